//! Generates the bundled example's data, deterministically: `data/trades.csv` (trades with
//! a known number of invalid rows of each kind) and `data/instruments.parquet` (the
//! reference data trades are joined with).
//!
//! ```text
//! cargo run --bin gen-trades -- [--rows N] [--out DIR]
//! ```
//! The invalid rows are spread through the file by a seeded shuffle; every invalid row
//! breaks exactly one rule, so the expected counts are exact (printed at the end and
//! written to `data/expected.json`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

/// Invalid rows per 100 000 trades, by the rule they break (`column:rule`).
const INVALID_PER_100K: &[(&str, &str, usize)] = &[
    ("trade_id", "pattern", 1000),
    ("side", "valid_values", 800),
    ("quantity", "exclusive_minimum", 700),
    ("price", "maximum", 600),
    ("symbol", "max_length", 500),
    ("side", "required", 400),
    ("traded_at", "type", 300),
    ("trade_id", "unique", 200),
];

const INSTRUMENTS: &[(&str, &str, &str)] = &[
    ("AAPL", "Technology", "XNAS"),
    ("MSFT", "Technology", "XNAS"),
    ("GOOG", "Technology", "XNAS"),
    ("AMZN", "Consumer", "XNAS"),
    ("TSLA", "Consumer", "XNAS"),
    ("META", "Technology", "XNAS"),
    ("NVDA", "Technology", "XNAS"),
    ("JPM", "Financials", "XNYS"),
    ("BAC", "Financials", "XNYS"),
    ("GS", "Financials", "XNYS"),
    ("MS", "Financials", "XNYS"),
    ("XOM", "Energy", "XNYS"),
    ("CVX", "Energy", "XNYS"),
    ("PFE", "Health", "XNYS"),
    ("JNJ", "Health", "XNYS"),
    ("KO", "Staples", "XNYS"),
    ("PEP", "Staples", "XNAS"),
    ("WMT", "Staples", "XNYS"),
    ("DIS", "Media", "XNYS"),
    ("NFLX", "Media", "XNAS"),
    ("BA", "Industrials", "XNYS"),
    ("CAT", "Industrials", "XNYS"),
    ("GE", "Industrials", "XNYS"),
    ("IBM", "Technology", "XNYS"),
];

/// xorshift64*: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone)]
struct Trade {
    trade_id: String,
    symbol: String,
    side: String,
    quantity: String,
    price: String,
    trader_email: String,
    traded_at: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rows: usize = 100_000;
    let mut out = PathBuf::from("data");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => rows = args.next().ok_or("--rows needs a number")?.parse()?,
            "--out" => out = PathBuf::from(args.next().ok_or("--out needs a directory")?),
            other => {
                return Err(format!("unknown argument `{other}` (use --rows N --out DIR)").into());
            }
        }
    }
    std::fs::create_dir_all(&out)?;

    // Which rows are invalid, and how: a seeded shuffle of 1..rows (row 0 stays valid so
    // a duplicate always has an earlier valid row to copy).
    let mut kind = vec![None::<usize>; rows];
    let mut order: Vec<usize> = (1..rows).collect();
    let mut rng = Rng(0x5EED_7EAD_5EED_7EAD);
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let mut next = 0;
    let mut expected = Vec::new();
    for (k, (column, rule, per_100k)) in INVALID_PER_100K.iter().enumerate() {
        let n = per_100k * rows / 100_000;
        for &row in order.iter().skip(next).take(n) {
            kind[row] = Some(k);
        }
        next += n;
        expected.push(format!("\"{column}:{rule}\": {n}"));
    }
    let invalid = next.min(order.len());

    let file = File::create(out.join("trades.csv"))?;
    let mut w = BufWriter::new(file);
    writeln!(
        w,
        "trade_id,symbol,side,quantity,price,trader_email,traded_at"
    )?;
    let mut last_valid: Option<Trade> = None;
    for (i, kind) in kind.iter().enumerate() {
        let (symbol, _, _) = INSTRUMENTS[rng.below(INSTRUMENTS.len() as u64) as usize];
        let mut t = Trade {
            trade_id: format!("T{:07}", i + 1),
            symbol: symbol.to_string(),
            side: if rng.below(2) == 0 { "BUY" } else { "SELL" }.to_string(),
            quantity: (1 + rng.below(5_000)).to_string(),
            price: format!("{}.{:02}", 1 + rng.below(2_000), rng.below(100)),
            trader_email: format!("trader{}@example.com", rng.below(250)),
            traded_at: format!(
                "2026-11-{:02}T{:02}:{:02}:{:02}",
                1 + rng.below(26),
                rng.below(24),
                rng.below(60),
                rng.below(60)
            ),
        };
        match kind.map(|k| INVALID_PER_100K[k].1) {
            None => last_valid = Some(t.clone()),
            Some("pattern") => t.trade_id = format!("X{:07}", i + 1),
            Some("valid_values") => t.side = "HOLD".into(),
            Some("exclusive_minimum") => t.quantity = format!("-{}", rng.below(100)),
            Some("maximum") => t.price = format!("{}.00", 100_001 + rng.below(50_000)),
            Some("max_length") => t.symbol = "TOOLONG".into(),
            Some("required") => t.side = String::new(),
            Some("type") => t.traded_at = "not-a-time".into(),
            Some("unique") => {
                if let Some(v) = &last_valid {
                    t = v.clone();
                }
            }
            Some(_) => {}
        }
        writeln!(
            w,
            "{},{},{},{},{},{},{}",
            t.trade_id, t.symbol, t.side, t.quantity, t.price, t.trader_email, t.traded_at
        )?;
    }
    w.flush()?;

    let schema = Arc::new(Schema::new(vec![
        Field::new("symbol", DataType::Utf8, false),
        Field::new("sector", DataType::Utf8, false),
        Field::new("exchange", DataType::Utf8, false),
    ]));
    let col = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(INSTRUMENTS.iter().map(
            |r| match i {
                0 => r.0,
                1 => r.1,
                _ => r.2,
            },
        )))
    };
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![col(0), col(1), col(2)])?;
    let mut pw =
        ArrowWriter::try_new(File::create(out.join("instruments.parquet"))?, schema, None)?;
    pw.write(&batch)?;
    pw.close()?;

    let summary = format!(
        "{{\n  \"rows\": {rows},\n  \"valid\": {},\n  \"rejected\": {invalid},\n  \"rejected_per_rule\": {{\n    {}\n  }}\n}}\n",
        rows - invalid,
        expected.join(",\n    ")
    );
    std::fs::write(out.join("expected.json"), &summary)?;
    eprintln!(
        "wrote {rows} trades ({invalid} invalid) and {} instruments to {}",
        INSTRUMENTS.len(),
        out.display()
    );
    Ok(())
}
