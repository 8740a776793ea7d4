//! Shared-memory pipes: data arrives whole and in order, a full ring holds the writer back,
//! a consumer that keeps every batch cannot stall the writer, and every way an end can go
//! away (finish, fail, drop, process death) reaches the other end as the right outcome.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, DictionaryArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use runink_engine::pipe::{self, PipeConfig, PipeReader, PipeWriter};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn batch(start: i64, rows: usize) -> RecordBatch {
    let ids = Int64Array::from_iter_values(start..start + rows as i64);
    let names = StringArray::from_iter((0..rows).map(|i| {
        if i % 7 == 0 {
            None
        } else {
            Some(format!("name-{}", start + i as i64))
        }
    }));
    RecordBatch::try_new(schema(), vec![Arc::new(ids), Arc::new(names)]).expect("batch")
}

fn new_pipe(dir: &Path, config: PipeConfig) -> PathBuf {
    let path = dir.join("p0");
    pipe::create(&path, config).expect("create");
    path
}

fn small() -> PipeConfig {
    PipeConfig {
        slots: 4,
        slot_bytes: 64 << 10,
    }
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ids");
            a.values().to_vec()
        })
        .collect()
}

#[test]
fn batches_arrive_whole_and_in_order_and_large_ones_are_split() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    let writer_path = path.clone();
    let sent: Vec<RecordBatch> = (0..200)
        .map(|i| {
            batch(
                i * 10_000,
                if i == 50 {
                    9_000
                } else {
                    1 + (i as usize % 300)
                },
            )
        })
        .collect();
    let to_send = sent.clone();
    let writer = std::thread::spawn(move || {
        let mut w = PipeWriter::open(&writer_path, &schema()).expect("writer");
        for b in &to_send {
            w.write(b).expect("write");
        }
        w.finish().expect("finish");
    });
    let mut r = PipeReader::open(&path).expect("reader");
    let mut got = Vec::new();
    while let Some(b) = r.next_batch().expect("read") {
        assert_eq!(b.schema(), schema());
        got.push(b);
    }
    writer.join().expect("writer thread");
    assert_eq!(ids(&got), ids(&sent));
    // The 9 000-row batch (well over a 64 KiB slot) came in several frames.
    assert!(
        got.len() > sent.len(),
        "{} frames for {} batches",
        got.len(),
        sent.len()
    );
    let names = |bs: &[RecordBatch]| -> Vec<Option<String>> {
        bs.iter()
            .flat_map(|b| {
                let a = b
                    .column(1)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("s");
                (0..a.len())
                    .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(names(&got), names(&sent));
    assert_eq!(r.next_batch().expect("after end"), None);
}

#[test]
fn a_full_ring_holds_the_writer_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small();
    let path = new_pipe(dir.path(), config);
    let written = Arc::new(AtomicUsize::new(0));
    let (writer_path, counter) = (path.clone(), Arc::clone(&written));
    let writer = std::thread::spawn(move || {
        let mut w = PipeWriter::open(&writer_path, &schema()).expect("writer");
        for i in 0..100 {
            w.write(&batch(i, 10)).expect("write");
            counter.fetch_add(1, Ordering::SeqCst);
        }
        w.finish().expect("finish");
    });
    let mut r = PipeReader::open(&path).expect("reader");
    let mut read = 0;
    while let Some(b) = r.next_batch().expect("read") {
        drop(b);
        read += 1;
        // Unread frames never exceed the slots (plus the write in flight).
        let ahead = written.load(Ordering::SeqCst).saturating_sub(read);
        assert!(
            ahead <= config.slots as usize,
            "writer {ahead} frames ahead"
        );
    }
    writer.join().expect("writer thread");
    assert_eq!(read, 100);
}

#[test]
fn a_reader_that_keeps_every_batch_does_not_stall_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    // The reader keeps every batch it reads (and so every slot decoded in place).
    let kept = through_a_thread(
        &path,
        &schema(),
        (0..64).map(|i| batch(i * 100, 100)).collect(),
    );
    assert_eq!(ids(&kept), (0..6400).collect::<Vec<i64>>());
}

#[test]
fn string_views_are_compacted_and_split_to_fit_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new(
        "s",
        DataType::Utf8View,
        false,
    )]));
    // 4 000 strings of 40 bytes: 160 KB of data, more than a 64 KiB slot.
    let values: Vec<String> = (0..4000).map(|i| format!("{i:040}")).collect();
    let array = arrow::array::StringViewArray::from_iter_values(values.iter());
    let big = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(array)]).expect("batch");
    // A view batch larger than a slot, and a small slice of it.
    let read = through_a_thread(&path, &schema, vec![big.clone(), big.slice(100, 10)]);
    let mut got = Vec::new();
    for b in &read {
        let a = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringViewArray>()
            .expect("view");
        got.extend(a.iter().map(|v| v.expect("not null").to_string()));
    }
    let mut expected = values.clone();
    expected.extend(values[100..110].iter().cloned());
    assert_eq!(got, expected);
}

#[test]
fn a_row_larger_than_a_slot_spans_several_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 4 slots of 64 KiB; one value of 300 KB needs five of them, more than the ring holds, so
    // the writer also waits for the reader mid-frame.
    let path = new_pipe(dir.path(), small());
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("s", DataType::Utf8, false),
    ]));
    let huge: String = (0..300_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let make = |ids: Vec<i64>, values: Vec<&str>| {
        RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(arrow::array::Int64Array::from(ids)),
                Arc::new(arrow::array::StringArray::from(values)),
            ],
        )
        .expect("batch")
    };
    let sent = vec![
        make(vec![1, 2], vec!["x", "y"]),
        make(vec![3, 4, 5], vec!["before", huge.as_str(), "after"]),
        make(vec![6], vec![huge.as_str()]),
        make(vec![7], vec!["z"]),
    ];
    let (to_send, writer_path, s2) = (sent.clone(), path.clone(), Arc::clone(&schema));
    let writer = std::thread::spawn(move || {
        let mut w = PipeWriter::open(&writer_path, &s2).expect("writer");
        for b in &to_send {
            w.write(b).expect("a batch with a value larger than a slot");
        }
        w.finish().expect("finish");
    });
    let mut r = PipeReader::open(&path).expect("reader");
    let mut got = Vec::new();
    while let Some(b) = r.next_batch().expect("read") {
        got.push(b);
    }
    writer.join().expect("writer thread");
    let joined = arrow::compute::concat_batches(&schema, &got).expect("concat");
    let expected = arrow::compute::concat_batches(&schema, &sent).expect("concat");
    assert_eq!(joined, expected);
}

#[test]
fn dictionary_columns_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("side", dict_type, false)]));
    let make = |vals: Vec<&str>| {
        let a: DictionaryArray<Int32Type> = vals.into_iter().collect();
        RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(a)]).expect("batch")
    };
    let mut w = PipeWriter::open(&path, &schema).expect("writer");
    let mut r = PipeReader::open(&path).expect("reader");
    w.write(&make(vec!["buy", "sell", "buy"])).expect("write");
    w.write(&make(vec!["sell", "sell"])).expect("write");
    w.finish().expect("finish");
    let mut rows = Vec::new();
    while let Some(b) = r.next_batch().expect("read") {
        let a = b
            .column(0)
            .as_any()
            .downcast_ref::<DictionaryArray<Int32Type>>()
            .expect("dict");
        let values = a
            .values()
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("s");
        rows.extend(
            a.keys()
                .values()
                .iter()
                .map(|k| values.value(*k as usize).to_string()),
        );
    }
    assert_eq!(rows, ["buy", "sell", "buy", "sell", "sell"]);
}

#[test]
fn a_failed_writer_fails_the_reader_after_its_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    let mut w = PipeWriter::open(&path, &schema()).expect("writer");
    let mut r = PipeReader::open(&path).expect("reader");
    w.write(&batch(0, 5)).expect("write");
    w.fail("slice s1-0 ran out of memory");
    assert_eq!(
        r.next_batch().expect("first").expect("a batch").num_rows(),
        5
    );
    let err = r.next_batch().expect_err("must fail").to_string();
    assert!(
        err.contains("p0") && err.contains("the writer failed: slice s1-0 ran out of memory"),
        "{err}"
    );
}

#[test]
fn a_writer_dropped_before_finishing_fails_the_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    let w = PipeWriter::open(&path, &schema()).expect("writer");
    let mut r = PipeReader::open(&path).expect("reader");
    drop(w);
    let err = r.next_batch().expect_err("must fail").to_string();
    assert!(err.contains("stopped before the end"), "{err}");
}

#[test]
fn a_reader_that_goes_away_fails_a_blocked_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    let mut w = PipeWriter::open(&path, &schema()).expect("writer");
    let r = PipeReader::open(&path).expect("reader");
    drop(r);
    let (at, err) = (0..10)
        .find_map(|i| w.write(&batch(i, 10)).err().map(|e| (i, e.to_string())))
        .expect("the writer must fail once the ring is full");
    // The four slots take four frames; the fifth write finds the ring full.
    assert_eq!(at, 4, "{err}");
    assert!(err.contains("reader closed the pipe"), "{err}");
}

#[test]
fn bad_pipes_and_second_ends_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("bogus");
    std::fs::write(&bogus, vec![0u8; 8192]).expect("write");
    for side in ["writer", "reader"] {
        std::fs::write(dir.path().join(format!("bogus.{side}")), b"").expect("lock");
    }
    let err = PipeReader::open(&bogus).err().expect("bogus").to_string();
    assert!(
        err.contains("bogus") && err.contains("not a Runink pipe"),
        "{err}"
    );
    let missing = PipeReader::open(&dir.path().join("nope"))
        .err()
        .expect("missing");
    assert!(missing.to_string().contains("cannot open"), "{missing}");

    let path = new_pipe(dir.path(), small());
    let _w = PipeWriter::open(&path, &schema()).expect("writer");
    let err = PipeWriter::open(&path, &schema())
        .err()
        .expect("second")
        .to_string();
    assert!(err.contains("another writer is already attached"), "{err}");
    let bad = pipe::create(
        &dir.path().join("p1"),
        PipeConfig {
            slots: 3,
            slot_bytes: 1 << 20,
        },
    )
    .expect_err("3 slots");
    assert!(bad.to_string().contains("power of two"), "{bad}");
}

#[test]
fn removing_a_pipe_removes_its_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 3);
    pipe::remove(&path);
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}

/// The child half of `a_writer_process_that_dies_fails_the_reader`: writes three batches
/// and aborts without closing (no destructors run, the kernel drops its lock).
#[test]
fn child_writer_that_aborts() {
    let Ok(path) = std::env::var("RUNINK_PIPE_TEST_CHILD") else {
        return;
    };
    let mut w = PipeWriter::open(Path::new(&path), &schema()).expect("writer");
    for i in 0..3 {
        w.write(&batch(i * 10, 10)).expect("write");
    }
    std::process::abort();
}

#[test]
fn a_writer_process_that_dies_fails_the_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    let mut r = PipeReader::open(&path).expect("reader");
    let status = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "child_writer_that_aborts",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUNINK_PIPE_TEST_CHILD", &path)
        .status()
        .expect("spawn child");
    assert!(!status.success(), "the child must have aborted");
    let mut rows = 0;
    let err = loop {
        match r.next_batch() {
            Ok(Some(b)) => rows += b.num_rows(),
            Ok(None) => panic!("a dead writer must not look like the end of the stream"),
            Err(e) => break e.to_string(),
        }
    };
    assert_eq!(rows, 30);
    assert!(err.contains("the writer process died"), "{err}");
}

/// `written` through a fresh pipe (writer and reader in this thread; the ring holds them).
/// `batches` written into the pipe at `path` by another thread (so a full ring does not
/// stall the test) and read back here.
fn through_a_thread(
    path: &Path,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Vec<RecordBatch> {
    let (writer_path, schema) = (path.to_path_buf(), Arc::clone(schema));
    let writer = std::thread::spawn(move || {
        let mut w = PipeWriter::open(&writer_path, &schema).expect("writer");
        for b in &batches {
            w.write(b).expect("write");
        }
        w.finish().expect("finish");
    });
    let mut r = PipeReader::open(path).expect("reader");
    let mut read = Vec::new();
    while let Some(b) = r.next_batch().expect("read") {
        read.push(b);
    }
    writer.join().expect("writer thread");
    read
}

fn round_trip(written: &[RecordBatch]) -> Vec<RecordBatch> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    let mut w = PipeWriter::open(&path, &written[0].schema()).expect("writer");
    let mut r = PipeReader::open(&path).expect("reader");
    for b in written {
        w.write(b).expect("write");
    }
    w.finish().expect("finish");
    let mut read = Vec::new();
    while let Some(b) = r.next_batch().expect("read") {
        read.push(b);
    }
    read
}

/// Every batch read back whole and equal, for layouts the reader decodes itself: nested,
/// nullable, and a stream of `Null` columns, whose messages have no body at all.
#[test]
fn batches_of_every_layout_arrive_equal_and_in_order() {
    use arrow::array::{BooleanArray, ListArray, NullArray, StructArray};
    use arrow::datatypes::Int64Type;

    let nested = |start: i64| -> RecordBatch {
        let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(start), None]),
            None,
            Some(vec![]),
        ]);
        let flags = BooleanArray::from(vec![Some(true), None, Some(false)]);
        let names = StringArray::from(vec![Some("é"), None, Some("")]);
        let inner = StructArray::from(vec![
            (
                Arc::new(Field::new("flag", DataType::Boolean, true)),
                Arc::new(flags.clone()) as Arc<dyn Array>,
            ),
            (
                Arc::new(Field::new("name", DataType::Utf8, true)),
                Arc::new(names.clone()) as Arc<dyn Array>,
            ),
        ]);
        RecordBatch::try_from_iter(vec![
            ("nothing", Arc::new(NullArray::new(3)) as Arc<dyn Array>),
            ("list", Arc::new(list)),
            ("inner", Arc::new(inner)),
            ("names", Arc::new(names)),
        ])
        .expect("batch")
    };
    let written = vec![nested(1), nested(2).slice(1, 2), nested(3)];
    assert_eq!(round_trip(&written), written);

    // Only `Null` columns: the batches' messages carry no body.
    let nulls = |rows| {
        RecordBatch::try_from_iter(vec![(
            "n",
            Arc::new(NullArray::new(rows)) as Arc<dyn Array>,
        )])
        .expect("batch")
    };
    let written = vec![nulls(5), nulls(3), nulls(1)];
    assert_eq!(round_trip(&written), written);
}

/// The reader trusts that batches have the stream's column types: the writer refuses others.
#[test]
fn a_batch_of_other_column_types_is_refused_by_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    let mut w = PipeWriter::open(&path, &schema()).expect("writer");
    let strings = RecordBatch::try_from_iter(vec![(
        "id",
        Arc::new(StringArray::from(vec!["1", "2"])) as Arc<dyn Array>,
    )])
    .expect("batch");
    let e = w.write(&strings).expect_err("one column, of strings");
    assert!(e.to_string().contains("a batch of 1 columns"), "{e}");
    let mut columns = batch(0, 2).columns().to_vec();
    columns[0] = Arc::new(StringArray::from(vec!["1", "2"]));
    let retyped = RecordBatch::try_from_iter(
        schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .zip(columns),
    )
    .expect("batch");
    let e = w
        .write(&retyped)
        .expect_err("strings where int64 is declared");
    assert!(
        e.to_string().contains("is Utf8, the stream's is Int64"),
        "{e}"
    );
}

/// A slice of a list column is as small as the rows it holds: it goes as one frame, not
/// split down to a frame per row (its values were once counted whole, however few rows).
#[test]
fn a_slice_of_a_list_column_goes_as_one_frame() {
    use arrow::array::ListArray;
    use arrow::datatypes::Int64Type;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = new_pipe(dir.path(), small());
    // 20 000 lists of 10 integers: 1.6 MB of values, far more than a 64 KiB slot.
    let lists = ListArray::from_iter_primitive::<Int64Type, _, _>(
        (0..20_000i64).map(|i| Some((0..10).map(move |j| Some(i * 10 + j)))),
    );
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new(
        "l",
        lists.data_type().clone(),
        true,
    )]));
    let big = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(lists)]).expect("batch");
    let part = big.slice(100, 500);
    let got = through_a_thread(&path, &schema, vec![part.clone()]);
    assert_eq!(
        got.len(),
        1,
        "frames: {:?}",
        got.iter().map(RecordBatch::num_rows).collect::<Vec<_>>()
    );
    assert_eq!(got[0].column(0).to_data(), part.column(0).to_data());
}
