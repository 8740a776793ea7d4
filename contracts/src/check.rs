//! Vectorized enforcement: a [`Checker`] turns each record batch into per-row violations, with Arrow kernels over whole columns.
//!
//! ```text
//!  batch column ──cast (safe)──► conformed column ──┬─ is_null ─────────► required
//!       │                             │             ├─ HashSet (run) ───► unique
//!       └── non-null in, null out ────┼─► type      ├─ eq / set ────────► valid_values
//!                                     │             ├─ regex ───────────► pattern
//!                                     │             ├─ lt/gt scalar ────► bounds
//!                                     │             └─ length + cmp ────► lengths
//!  one boolean mask per (column, rule) with any set bit
//!       └─► OR ─► valid;  set bits only ─► ListArray<Struct{rule, column, message}>
//! ```
//!
//! Rules other than `type` and `required` ignore nulls, and a value that
//! fails `type` is null afterwards, so each bad value is reported once, by
//! its most basic rule. When no mask has a set bit (the common case) the
//! outcome is built without touching rows: an all-empty list and an all-true
//! mask. Messages are formatted only for violating rows.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, TryLockError};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, LargeStringArray,
    ListArray, Scalar, StringArray, StringBuilder, StringViewArray, StructArray, new_empty_array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use arrow::compute::kernels::cmp;
use arrow::compute::kernels::length::length;
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type, Schema};
use arrow::row::{RowConverter, Rows, SortField};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{ContractError, Result};
use crate::model::{self, Contract, rule};
use crate::pattern::Pattern;
use crate::seen::{SeenBytes, SeenInts, random_seed, shard_hash_bytes, shard_hash_int};
use crate::{timestamp, types};

/// The type of the `_violations` column:
/// `List<Struct{rule: Utf8, column: Utf8, message: Utf8}>`, nothing nullable.
pub fn violations_data_type() -> DataType {
    DataType::List(violation_item_field())
}

/// The `_violations` column the engine appends to checked batches.
pub fn violations_field() -> Field {
    Field::new("_violations", violations_data_type(), false)
}

fn violation_fields() -> Fields {
    Fields::from(vec![
        Field::new("rule", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ])
}

fn violation_item_field() -> FieldRef {
    Arc::new(Field::new(
        "item",
        DataType::Struct(violation_fields()),
        false,
    ))
}

/// What [`Checker::check`] found in one batch.
#[derive(Debug)]
pub struct CheckOutcome {
    /// One list per row, empty for a valid row.
    pub violations: ListArray,
    /// `true` where the row has no violation; never null.
    pub valid: BooleanArray,
    /// `column:rule` → rows of this batch violating it. Only rules with at
    /// least one violation appear, so a clean batch has an empty map.
    pub counts: BTreeMap<String, u64>,
    /// The contract's columns in contract order, as the rules saw them: cast
    /// to the contract type (values that failed `type` are null), or the
    /// input column itself when it already conforms. String and binary
    /// columns keep their input encoding (`Utf8View`, `LargeUtf8`, ...)
    /// rather than being copied into `Utf8`.
    pub columns: Vec<ArrayRef>,
}

impl CheckOutcome {
    /// Rows with at least one violation.
    pub fn invalid_rows(&self) -> usize {
        self.valid.len() - self.valid.true_count()
    }
}

/// Checks batches of one input schema against one contract.
///
/// Holds the state of the `unique` rules: values seen in earlier batches
/// count as duplicates, so use one checker per run (per stream key for
/// keyed streams). That state grows with the number of distinct values.
///
/// Clones share that state (behind a lock per `unique` column) and nothing else, so a
/// parallel plan gives each partition its own clone: the vectorized rules run in parallel,
/// and a value seen by any partition is a duplicate in every other.
#[derive(Clone, Debug)]
pub struct Checker {
    contract: String,
    input_width: usize,
    columns: Vec<ColumnCheck>,
    /// With two `unique` columns or more, held while a batch's rows are judged against all
    /// of them, so that a row claims its keys only if none of them is a duplicate.
    joint_unique: Option<Arc<Mutex<()>>>,
}

#[derive(Clone, Debug)]
struct ColumnCheck {
    name: String,
    input_index: usize,
    input_type: DataType,
    /// The type rules run on: the contract type, or the input type when
    /// it is the same family (strings, binaries) and needs no cast.
    target: DataType,
    cast: bool,
    /// The contract type in messages.
    type_name: String,
    required: bool,
    unique: Option<Arc<SharedSeen>>,
    valid_values: Option<ValidValues>,
    pattern: Option<(Pattern, String)>,
    bounds: Vec<Bound>,
    min_length: Option<u64>,
    max_length: Option<u64>,
}

/// Values already seen by one shard of a `unique` column, typed where it is cheap.
enum Seen {
    Strings(SeenBytes),
    Ints(SeenInts),
    /// Any other type, as `arrow::row` bytes (type-agnostic and comparable).
    Rows(SeenBytes),
}

impl Seen {
    fn len(&self) -> usize {
        match self {
            Seen::Strings(s) | Seen::Rows(s) => s.len(),
            Seen::Ints(s) => s.len(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Seen::Strings(s) | Seen::Rows(s) => s.heap_bytes(),
            Seen::Ints(s) => s.heap_bytes(),
        }
    }
}

/// How many independently locked sets a `unique` column's run-wide state is split into.
/// Partitions checking batches in parallel take the shards of their own values, so they
/// rarely wait for one another (one lock for the whole set made `unique` run on one core).
/// More shards do not help: each batch touches every shard, and a probe into millions of
/// keys is a cache miss whatever the shard (256 shards measured no faster than 16; on the
/// 2-core benchmark machine the shards did not move the overall ratio either).
const UNIQUE_SHARDS: usize = 16;

/// The run-wide state of one `unique` column, shared by every clone of the checker: the
/// values seen, split by a keyed hash into [`UNIQUE_SHARDS`] independently locked sets.
struct SharedSeen {
    shards: Box<[Mutex<Seen>]>,
    /// Keys the shard hash (not the sets' own hashes).
    seed: u64,
    /// For types without a cheaper form: values become `arrow::row` bytes, outside locks.
    converter: Option<RowConverter>,
}

impl SharedSeen {
    fn new(make: impl Fn() -> Seen, converter: Option<RowConverter>) -> Self {
        Self {
            shards: (0..UNIQUE_SHARDS).map(|_| Mutex::new(make())).collect(),
            seed: random_seed(),
            converter,
        }
    }

    fn shard(hash: u64) -> usize {
        // The top bits: the low ones also pick buckets inside the sets.
        (hash >> (64 - UNIQUE_SHARDS.trailing_zeros())) as usize
    }

    fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.heap_bytes()).unwrap_or(0))
            .sum()
    }
}

impl std::fmt::Debug for SharedSeen {
    /// The sets can hold millions of values; a debug print shows their size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len: usize = self
            .shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum();
        write!(f, "SharedSeen {{ {len} values in {UNIQUE_SHARDS} shards }}")
    }
}

/// One batch's values of a `unique` column, in the form its sets take.
enum UniqueKeys<'a> {
    Strings(Strs<'a>),
    Ints(&'a Int64Array),
    Rows(Rows),
}

impl<'a> UniqueKeys<'a> {
    /// The values of `col`, a column whose run-wide state is `shared`.
    fn of(shared: &SharedSeen, col: &'a ArrayRef) -> Result<Self> {
        Ok(match &shared.converter {
            Some(converter) => {
                // `-0.0` equals `0.0`; adding zero turns the one into the other (IEEE 754),
                // so both have one key.
                let zero = matches!(
                    col.data_type(),
                    DataType::Float64 | DataType::Float32 | DataType::Float16
                )
                .then(|| {
                    let zero: ArrayRef = Arc::new(Float64Array::from(vec![0.0]));
                    cast_with_options(&zero, col.data_type(), &CastOptions::default()).ok()
                })
                .flatten();
                let normalized = match zero {
                    Some(zero) => arrow::compute::kernels::numeric::add(
                        col,
                        &arrow::array::Scalar::new(zero),
                    )?,
                    None => Arc::clone(col),
                };
                UniqueKeys::Rows(converter.convert_columns(std::slice::from_ref(&normalized))?)
            }
            None if col.data_type() == &DataType::Int64 => UniqueKeys::Ints(
                col.as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| internal("unique integers", col))?,
            ),
            None => UniqueKeys::Strings(
                Strs::new(col.as_ref()).ok_or_else(|| internal("unique strings", col))?,
            ),
        })
    }

    /// Row `i`'s shard of `shared`, and a look-up of its value in that shard's set.
    fn lookup(
        &self,
        shared: &SharedSeen,
        i: usize,
    ) -> (usize, impl Fn(&Seen) -> Result<bool> + '_) {
        let seed = shared.seed;
        let shard = SharedSeen::shard(match self {
            UniqueKeys::Strings(s) => shard_hash_bytes(s.value(i).as_bytes(), seed),
            UniqueKeys::Ints(a) => shard_hash_int(a.value(i), seed),
            UniqueKeys::Rows(r) => shard_hash_bytes(r.row(i).as_ref(), seed),
        });
        let contains = move |seen: &Seen| match (seen, self) {
            (Seen::Strings(set), UniqueKeys::Strings(v)) => Ok(set.contains(v.value(i).as_bytes())),
            (Seen::Ints(set), UniqueKeys::Ints(v)) => Ok(set.contains(v.value(i))),
            (Seen::Rows(set), UniqueKeys::Rows(v)) => Ok(set.contains(v.row(i).data())),
            _ => Err(ContractError::Internal(
                "unique state does not fit its column's type".into(),
            )),
        };
        (shard, contains)
    }

    /// Records row `i`'s value in `seen`, its shard's set.
    fn claim(&self, seen: &mut Seen, i: usize) -> Result<()> {
        match (seen, self) {
            (Seen::Strings(set), UniqueKeys::Strings(v)) => {
                set.seen_before(v.value(i).as_bytes());
            }
            (Seen::Ints(set), UniqueKeys::Ints(v)) => {
                set.seen_before(v.value(i));
            }
            (Seen::Rows(set), UniqueKeys::Rows(v)) => {
                set.seen_before(v.row(i).data());
            }
            _ => {
                return Err(ContractError::Internal(
                    "unique state does not fit its column's type".into(),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct ValidValues {
    /// Each allowed value as a one-row array of the target type; OR-ed `eq`.
    scalars: Vec<ArrayRef>,
    /// For long lists of strings a set lookup beats one `eq` pass per value.
    set: Option<HashSet<String>>,
    /// `[BUY, SELL]`, for messages.
    shown: String,
}

/// Above this many valid values, string columns use a set lookup.
const VALID_VALUES_EQ_MAX: usize = 16;

/// Formatted values are cut to this many characters in messages.
const MESSAGE_VALUE_CHARS_MAX: usize = 80;

#[derive(Clone, Debug)]
struct Bound {
    rule: &'static str,
    /// The comparison that *violates* the bound.
    op: Op,
    limit: f64,
    /// The limit as a one-row array of the target type when it converts
    /// exactly; otherwise the column is compared as Float64.
    native: Option<ArrayRef>,
    shown: String,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// One (column, rule) with at least one violating row in this batch.
struct Mask {
    column: usize,
    rule: &'static str,
    bits: BooleanBuffer,
    count: usize,
    /// Lengths, for length messages.
    lengths: Option<ArrayRef>,
    /// Bound index, for bound messages.
    bound: Option<usize>,
}

impl Checker {
    /// Whether a column is checked for `unique`, whose state spans every row the checker
    /// and its clones see.
    pub fn has_unique(&self) -> bool {
        self.columns.iter().any(|c| c.unique.is_some())
    }

    /// Prepares checks of `contract` for batches with schema `input`.
    ///
    /// Fails with [`ContractError::Schema`] when a contract column is missing
    /// from `input` or its input type cannot be cast to the contract type.
    /// Extra input columns are ignored.
    pub fn new(contract: &Contract, input: &Schema) -> Result<Checker> {
        let schema_error = |message: String| ContractError::schema(&contract.id, message);
        let mut columns = Vec::with_capacity(contract.fields.len());
        for f in &contract.fields {
            let Ok(input_index) = input.index_of(&f.name) else {
                let names: Vec<&str> = input.fields().iter().map(|x| x.name().as_str()).collect();
                return Err(schema_error(format!(
                    "input has no column `{}` (input columns: {})",
                    f.name,
                    names.join(", ")
                )));
            };
            let input_type = input.field(input_index).data_type().clone();
            let same_family = (types::is_string(&input_type) && types::is_string(&f.data_type))
                || (types::is_binary(&input_type) && types::is_binary(&f.data_type));
            let (target, cast) = if input_type.equals_datatype(&f.data_type) || same_family {
                (input_type.clone(), false)
            } else if can_cast_types(&input_type, &f.data_type) {
                (f.data_type.clone(), true)
            } else {
                return Err(schema_error(format!(
                    "column `{}` is {} in the input, which cannot be cast to the contract type {}",
                    f.name,
                    types::type_name(&input_type),
                    types::type_name(&f.data_type)
                )));
            };
            // Contracts can be built in code too; hold them to the readers' rules.
            if let Err(problem) = model::validate_field(f) {
                return Err(schema_error(problem.message));
            }

            let unique = if f.unique {
                let seen = if types::is_string(&target) {
                    SharedSeen::new(|| Seen::Strings(SeenBytes::new()), None)
                } else if target == DataType::Int64 {
                    SharedSeen::new(|| Seen::Ints(SeenInts::new()), None)
                } else {
                    let converter = RowConverter::new(vec![SortField::new(target.clone())])
                        .map_err(|e| {
                            schema_error(format!(
                                "column `{}`: cannot track unique values of type {}: {e}",
                                f.name,
                                types::type_name(&target)
                            ))
                        })?;
                    SharedSeen::new(|| Seen::Rows(SeenBytes::new()), Some(converter))
                };
                Some(Arc::new(seen))
            } else {
                None
            };

            let valid_values = match &f.valid_values {
                None => None,
                Some(values) => {
                    let array = model::cast_valid_values(values, &target).map_err(|bad| {
                        schema_error(format!(
                            "valid value {bad:?} of `{}` is not a valid {}",
                            f.name,
                            types::type_name(&target)
                        ))
                    })?;
                    let set = (types::is_string(&target) && values.len() > VALID_VALUES_EQ_MAX)
                        .then(|| values.iter().cloned().collect());
                    Some(ValidValues {
                        scalars: (0..array.len()).map(|i| array.slice(i, 1)).collect(),
                        set,
                        shown: format!("[{}]", values.join(", ")),
                    })
                }
            };

            let pattern = match &f.pattern {
                None => None,
                Some(p) => Some((
                    Pattern::new(p).map_err(|e| {
                        schema_error(format!(
                            "invalid pattern for `{}`: {}",
                            f.name,
                            model::regex_message(&e)
                        ))
                    })?,
                    p.clone(),
                )),
            };

            let mut bounds = Vec::new();
            for (r, op, limit) in [
                (rule::MINIMUM, Op::Lt, f.minimum),
                (rule::MAXIMUM, Op::Gt, f.maximum),
                (rule::EXCLUSIVE_MINIMUM, Op::LtEq, f.exclusive_minimum),
                (rule::EXCLUSIVE_MAXIMUM, Op::GtEq, f.exclusive_maximum),
            ] {
                let Some(limit) = limit else { continue };
                // Arrow compares floats in total order, where -0.0 < 0.0; IEEE (and
                // people) hold them equal. Bounds and values are compared with +0.0.
                let limit = limit + 0.0;
                let native = native_bound(limit, &target);
                let shown = match &native {
                    Some(n) if types::is_temporal(&target) => show_value(n.as_ref(), 0),
                    _ => shown_number(limit),
                };
                if native.is_none() && !types::is_numeric(&target) {
                    return Err(schema_error(format!(
                        "{r} {} of `{}` is not a valid {}",
                        shown_number(limit),
                        f.name,
                        types::type_name(&target)
                    )));
                }
                bounds.push(Bound {
                    rule: r,
                    op,
                    limit,
                    native,
                    shown,
                });
            }

            columns.push(ColumnCheck {
                name: f.name.clone(),
                input_index,
                input_type,
                target,
                cast,
                type_name: types::type_name(&f.data_type),
                required: f.required,
                unique,
                valid_values,
                pattern,
                bounds,
                min_length: f.min_length,
                max_length: f.max_length,
            });
        }
        let joint_unique =
            (columns.iter().filter(|c| c.unique.is_some()).count() > 1).then(Default::default);
        Ok(Checker {
            contract: contract.id.clone(),
            input_width: input.fields().len(),
            columns,
            joint_unique,
        })
    }

    /// The fields of [`CheckOutcome::columns`] in contract order, each with the index of
    /// the input column it conforms: the contract type (nullable, since values that fail
    /// `type` become null), or the input type where no cast is needed.
    pub fn conformed_fields(&self) -> Vec<(usize, Field)> {
        self.columns
            .iter()
            .map(|c| {
                (
                    c.input_index,
                    Field::new(c.name.clone(), c.target.clone(), true),
                )
            })
            .collect()
    }

    /// Bytes of run-wide state (the values `unique` columns have seen). It grows with
    /// the number of distinct values; callers account it against their memory budget.
    pub fn state_bytes(&self) -> usize {
        self.columns
            .iter()
            .filter_map(|c| c.unique.as_ref())
            .map(|seen| seen.heap_bytes())
            .sum()
    }

    /// Checks one batch, which must have the input schema given to [`Checker::new`].
    pub fn check(&mut self, batch: &arrow::record_batch::RecordBatch) -> Result<CheckOutcome> {
        let rows = batch.num_rows();
        if batch.num_columns() != self.input_width {
            return Err(ContractError::Internal(format!(
                "contract `{}`: batch has {} columns, the checker was built for {}",
                self.contract,
                batch.num_columns(),
                self.input_width
            )));
        }
        let mut masks = Vec::new();
        let mut conformed = Vec::with_capacity(self.columns.len());
        for (ci, c) in self.columns.iter_mut().enumerate() {
            let input = batch.column(c.input_index);
            if input.data_type() != &c.input_type {
                return Err(ContractError::Internal(format!(
                    "contract `{}`: column `{}` is {} in this batch but {} in the checker's input schema",
                    self.contract,
                    c.name,
                    types::type_name(input.data_type()),
                    types::type_name(&c.input_type)
                )));
            }
            let col = if c.cast {
                let safe = CastOptions {
                    safe: true,
                    format_options: FormatOptions::default(),
                };
                // Decimals read from text in exponent notation (`1e2`) too, as integers do.
                let plain = match &c.target {
                    DataType::Decimal128(..) | DataType::Decimal256(..) => {
                        without_exponents(input)?
                    }
                    _ => None,
                };
                let read_from = plain.as_ref().unwrap_or(input);
                let cast = match timestamp::text_to_timestamp(input.as_ref(), &c.target, &safe)? {
                    Some(read) => read,
                    None => cast_with_options(read_from, &c.target, &safe)?,
                };
                let cast = if c.target.is_integer() {
                    integral_text(input, cast)?
                } else if c.target == DataType::Boolean {
                    null_boolean_prefixes(input, cast)?
                } else {
                    timestamp::null_bad_times(input.as_ref(), cast)?
                };
                null_lossy(read_from, cast)?
            } else {
                Arc::clone(input)
            };
            c.run(ci, input, &col, &mut masks)?;
            conformed.push(col);
        }
        if self.columns.iter().any(|c| c.unique.is_some()) {
            // Rows rejected so far (by any rule of any column) take no part in uniqueness.
            let mut rejected = BooleanBuffer::new_unset(rows);
            for m in &masks {
                rejected = &rejected | &m.bits;
            }
            match &self.joint_unique {
                Some(joint) => {
                    self.run_uniques_jointly(joint, &conformed, &rejected, &mut masks)?
                }
                None => {
                    for (ci, c) in self.columns.iter().enumerate() {
                        c.run_unique(ci, &conformed[ci], &rejected, &mut masks)?;
                    }
                }
            }
        }

        if masks.is_empty() {
            return Ok(CheckOutcome {
                violations: empty_violations(rows)?,
                valid: BooleanArray::new(BooleanBuffer::new_set(rows), None),
                counts: BTreeMap::new(),
                columns: conformed,
            });
        }
        self.report(batch, rows, masks, conformed)
    }

    /// `unique` over several columns: row by row, a row that is a duplicate in any of
    /// them gets a violation for each column it repeats and claims none of its keys, so a
    /// rejected row never holds a key back from a later valid row. One lock (per checker
    /// and its clones) covers the whole batch, so partitions cannot interleave between a
    /// row's look-ups and its claims.
    fn run_uniques_jointly(
        &self,
        joint: &Mutex<()>,
        conformed: &[ArrayRef],
        rejected: &BooleanBuffer,
        masks: &mut Vec<Mask>,
    ) -> Result<()> {
        struct Column<'a> {
            ci: usize,
            shared: &'a SharedSeen,
            keys: UniqueKeys<'a>,
            nulls: Option<NullBuffer>,
            duplicate: Vec<bool>,
        }
        let rows = rejected.len();
        let mut columns = Vec::new();
        for (ci, c) in self.columns.iter().enumerate() {
            let Some(shared) = &c.unique else { continue };
            let col = &conformed[ci];
            columns.push(Column {
                ci,
                shared,
                keys: UniqueKeys::of(shared, col)?,
                nulls: col.logical_nulls(),
                duplicate: vec![false; rows],
            });
        }
        let poisoned = || ContractError::Internal("unique state is poisoned".into());
        let _joint = joint.lock().map_err(|_| poisoned())?;
        for i in (0..rows).filter(|&i| !rejected.value(i)) {
            let mut repeats = false;
            for c in &mut columns {
                if c.nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    continue;
                }
                let (shard, seen) = c.keys.lookup(c.shared, i);
                let seen_before = seen(&*c.shared.shards[shard].lock().map_err(|_| poisoned())?)?;
                c.duplicate[i] = seen_before;
                repeats |= seen_before;
            }
            if repeats {
                continue;
            }
            for c in &columns {
                if c.nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    continue;
                }
                let (shard, _) = c.keys.lookup(c.shared, i);
                let mut set = c.shared.shards[shard].lock().map_err(|_| poisoned())?;
                c.keys.claim(&mut set, i)?;
            }
        }
        masks.extend(
            columns
                .iter()
                .filter_map(|c| unique_mask(c.ci, &c.duplicate)),
        );
        Ok(())
    }

    /// Builds the outcome of a batch with violations: messages for the
    /// violating rows only.
    fn report(
        &self,
        batch: &arrow::record_batch::RecordBatch,
        rows: usize,
        masks: Vec<Mask>,
        conformed: Vec<ArrayRef>,
    ) -> Result<CheckOutcome> {
        let mut invalid = BooleanBuffer::new_unset(rows);
        let mut entries: Vec<(usize, usize)> = Vec::new();
        let mut counts = BTreeMap::new();
        for (mi, m) in masks.iter().enumerate() {
            invalid |= &m.bits;
            entries.extend(m.bits.set_indices().map(|row| (row, mi)));
            let c = &self.columns[m.column];
            counts.insert(format!("{}:{}", c.name, m.rule), m.count as u64);
        }
        // Row order, then mask order (columns in contract order, rules in `rule::ALL` order).
        entries.sort_unstable();

        let mut rule_b = StringBuilder::with_capacity(entries.len(), entries.len() * 12);
        let mut column_b = StringBuilder::with_capacity(entries.len(), entries.len() * 12);
        let mut message_b = StringBuilder::with_capacity(entries.len(), entries.len() * 48);
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0i32);
        let mut e = 0;
        for row in 0..rows {
            while e < entries.len() && entries[e].0 == row {
                let m = &masks[entries[e].1];
                let c = &self.columns[m.column];
                rule_b.append_value(m.rule);
                column_b.append_value(&c.name);
                let input = batch.column(c.input_index);
                message_b.append_value(c.message(
                    m,
                    row,
                    input.as_ref(),
                    conformed[m.column].as_ref(),
                ));
                e += 1;
            }
            offsets.push(i32::try_from(e).map_err(|_| {
                ContractError::Internal(format!(
                    "contract `{}`: more than {} violations in one batch",
                    self.contract,
                    i32::MAX
                ))
            })?);
        }
        let items = StructArray::try_new(
            violation_fields(),
            vec![
                Arc::new(rule_b.finish()) as ArrayRef,
                Arc::new(column_b.finish()),
                Arc::new(message_b.finish()),
            ],
            None,
        )?;
        let violations = ListArray::try_new(
            violation_item_field(),
            OffsetBuffer::new(offsets.into()),
            Arc::new(items),
            None,
        )?;
        Ok(CheckOutcome {
            violations,
            valid: BooleanArray::new(!&invalid, None),
            counts,
            columns: conformed,
        })
    }
}

impl ColumnCheck {
    /// The `unique` rule, run after every other rule of every column: only rows that are
    /// valid so far (`rejected` unset) are checked and remembered, so a rejected row never
    /// claims a key that a later valid row carries, and the valid output is unique.
    fn run_unique(
        &self,
        ci: usize,
        col: &ArrayRef,
        rejected: &BooleanBuffer,
        masks: &mut Vec<Mask>,
    ) -> Result<()> {
        let Some(shared) = &self.unique else {
            return Ok(());
        };
        let rows = col.len();
        let nulls = col.logical_nulls();
        let candidate =
            |i: usize| !rejected.value(i) && nulls.as_ref().is_none_or(|v| v.is_valid(i));
        let keys = UniqueKeys::of(shared, col)?;
        let seed = shared.seed;
        let shard_of = |i: usize| -> usize {
            SharedSeen::shard(match &keys {
                UniqueKeys::Strings(s) => shard_hash_bytes(s.value(i).as_bytes(), seed),
                UniqueKeys::Ints(a) => shard_hash_int(a.value(i), seed),
                UniqueKeys::Rows(r) => shard_hash_bytes(r.row(i).as_ref(), seed),
            })
        };

        // Group the rows to check by shard (a counting sort), so each shard is locked once.
        const SKIP: u16 = u16::MAX;
        let mut shard_of_row = vec![SKIP; rows];
        let mut counts = [0usize; UNIQUE_SHARDS];
        for (i, slot) in shard_of_row.iter_mut().enumerate() {
            if candidate(i) {
                let s = shard_of(i);
                *slot = s as u16;
                counts[s] += 1;
            }
        }
        let mut starts = [0usize; UNIQUE_SHARDS + 1];
        for s in 0..UNIQUE_SHARDS {
            starts[s + 1] = starts[s] + counts[s];
        }
        let mut order = vec![0u32; starts[UNIQUE_SHARDS]];
        let mut next = starts;
        for (i, &s) in shard_of_row.iter().enumerate() {
            if s != SKIP {
                order[next[s as usize]] = i as u32;
                next[s as usize] += 1;
            }
        }

        let mut duplicate = vec![false; rows];
        let mut check_shard = |seen: &mut Seen, s: usize| -> Result<()> {
            let group = &order[starts[s]..starts[s + 1]];
            match (seen, &keys) {
                (Seen::Strings(set), UniqueKeys::Strings(v)) => set.seen_before_each(
                    group.len(),
                    |j| v.value(group[j] as usize).as_bytes(),
                    |j, before| duplicate[group[j] as usize] = before,
                ),
                (Seen::Ints(set), UniqueKeys::Ints(v)) => set.seen_before_each(
                    group.len(),
                    |j| v.value(group[j] as usize),
                    |j, before| duplicate[group[j] as usize] = before,
                ),
                (Seen::Rows(set), UniqueKeys::Rows(v)) => set.seen_before_each(
                    group.len(),
                    |j| v.row(group[j] as usize).data(),
                    |j, before| duplicate[group[j] as usize] = before,
                ),
                _ => {
                    return Err(ContractError::Internal(format!(
                        "unique state of `{}` does not fit its column's type",
                        self.name
                    )));
                }
            }
            Ok(())
        };
        let poisoned =
            || ContractError::Internal(format!("unique state of `{}` is poisoned", self.name));
        // Shards another partition holds are left for later rather than waited for.
        let mut busy = Vec::new();
        for s in (0..UNIQUE_SHARDS).filter(|&s| counts[s] > 0) {
            match shared.shards[s].try_lock() {
                Ok(mut seen) => check_shard(&mut seen, s)?,
                Err(TryLockError::WouldBlock) => busy.push(s),
                Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
            }
        }
        for s in busy {
            let mut seen = shared.shards[s].lock().map_err(|_| poisoned())?;
            check_shard(&mut seen, s)?;
        }
        masks.extend(unique_mask(ci, &duplicate));
        Ok(())
    }

    /// Runs every rule of this column over one batch, pushing a mask per
    /// rule with violations, in `rule::ALL` order.
    fn run(
        &mut self,
        ci: usize,
        input: &ArrayRef,
        col: &ArrayRef,
        masks: &mut Vec<Mask>,
    ) -> Result<()> {
        let mut push = |rule: &'static str,
                        bits: BooleanBuffer,
                        lengths: Option<ArrayRef>,
                        bound: Option<usize>| {
            let count = bits.count_set_bits();
            if count > 0 {
                masks.push(Mask {
                    column: ci,
                    rule,
                    bits,
                    count,
                    lengths,
                    bound,
                });
            }
        };
        if self.cast
            && let Some(cast_nulls) = col.logical_nulls()
            && cast_nulls.null_count() > 0
        {
            // Non-null in, null out: the cast could not represent the value.
            let lost = match input.logical_nulls() {
                Some(input_nulls) => input_nulls.inner() & &!cast_nulls.inner(),
                None => !cast_nulls.inner(),
            };
            push(rule::TYPE, lost, None, None);
        }
        if self.required
            && let Some(nulls) = input.logical_nulls()
            && nulls.null_count() > 0
        {
            push(rule::REQUIRED, !nulls.inner(), None, None);
        }
        let valid = col.logical_nulls();
        if valid.as_ref().is_some_and(|v| v.null_count() == v.len()) || col.is_empty() {
            // Every value is null: the remaining rules all ignore nulls.
            return Ok(());
        }
        let valid = valid.as_ref();
        let is_valid = |i: usize| valid.is_none_or(|v| v.is_valid(i));
        let rows = col.len();

        if let Some(vv) = &self.valid_values {
            let allowed = match (&vv.set, Strs::new(col.as_ref())) {
                (Some(set), Some(s)) => {
                    BooleanBuffer::collect_bool(rows, |i| !is_valid(i) || set.contains(s.value(i)))
                }
                _ => {
                    let mut allowed = BooleanBuffer::new_unset(rows);
                    for v in &vv.scalars {
                        let hit = cmp::eq(col, &Scalar::new(Arc::clone(v)))?;
                        allowed |= hit.values();
                    }
                    allowed
                }
            };
            push(
                rule::VALID_VALUES,
                with_valid(&!&allowed, valid),
                None,
                None,
            );
        }

        if let Some((re, _)) = &self.pattern {
            let s = Strs::new(col.as_ref()).ok_or_else(|| internal("pattern", col))?;
            let bits =
                BooleanBuffer::collect_bool(rows, |i| is_valid(i) && !re.is_match(s.value(i)));
            push(rule::PATTERN, bits, None, None);
        }

        let mut as_f64: Option<ArrayRef> = None;
        let positive_zero;
        let col = if col.data_type().is_floating() && !self.bounds.is_empty() {
            let zero = cast_with_options(
                &Float64Array::from(vec![0.0]),
                col.data_type(),
                &CastOptions::default(),
            )?;
            positive_zero = arrow::compute::kernels::numeric::add(col, &Scalar::new(zero))?;
            &positive_zero
        } else {
            col
        };
        // NaN lies within no bound (Arrow's order would put it above every number, so it
        // would pass a minimum and fail a maximum).
        let nan = if col.data_type().is_floating() && !self.bounds.is_empty() {
            let f = arrow::compute::cast(col, &DataType::Float64)?;
            let f = f.as_primitive::<arrow::datatypes::Float64Type>();
            Some(BooleanBuffer::collect_bool(rows, |i| f.value(i).is_nan()))
        } else {
            None
        };
        for (bi, b) in self.bounds.iter().enumerate() {
            let hits = match &b.native {
                Some(native) => compare(b.op, col, &Scalar::new(Arc::clone(native)))?,
                None => {
                    let f = match &as_f64 {
                        Some(f) => Arc::clone(f),
                        None => {
                            let f = arrow::compute::cast(col, &DataType::Float64)?;
                            as_f64 = Some(Arc::clone(&f));
                            f
                        }
                    };
                    let limit: ArrayRef = Arc::new(Float64Array::from(vec![b.limit]));
                    compare(b.op, &f, &Scalar::new(limit))?
                }
            };
            let hits = match &nan {
                Some(nan) => hits.values() | nan,
                None => hits.values().clone(),
            };
            push(b.rule, with_valid(&hits, valid), None, Some(bi));
        }

        if self.min_length.is_some() || self.max_length.is_some() {
            let lengths = lengths(col)?;
            for (r, op, n) in [
                (rule::MIN_LENGTH, Op::Lt, self.min_length),
                (rule::MAX_LENGTH, Op::Gt, self.max_length),
            ] {
                let Some(n) = n else { continue };
                let hits = compare(
                    op,
                    &lengths,
                    &Scalar::new(length_scalar(n, lengths.data_type())?),
                )?;
                push(
                    r,
                    with_valid(hits.values(), valid),
                    Some(Arc::clone(&lengths)),
                    None,
                );
            }
        }
        Ok(())
    }

    /// The sentence for one violation. `input` is the column as it came in
    /// (for `type`), `col` as the rules saw it.
    fn message(&self, m: &Mask, row: usize, input: &dyn Array, col: &dyn Array) -> String {
        match m.rule {
            rule::TYPE => format!(
                "value {} is not a valid {}",
                show_value(input, row),
                self.type_name
            ),
            rule::REQUIRED => "null value in required column".to_string(),
            rule::UNIQUE => format!(
                "duplicate value {} (first seen earlier in this run)",
                show_value(col, row)
            ),
            rule::VALID_VALUES => format!(
                "value {} is not one of {}",
                show_value(col, row),
                self.valid_values
                    .as_ref()
                    .map_or("[]", |v| v.shown.as_str())
            ),
            rule::PATTERN => format!(
                "value {} does not match pattern \"{}\"",
                show_value(col, row),
                self.pattern.as_ref().map_or("", |(_, p)| p.as_str())
            ),
            rule::MIN_LENGTH | rule::MAX_LENGTH => {
                let len = m.lengths.as_ref().map_or(0, |l| length_at(l.as_ref(), row));
                let (limit, what) = if m.rule == rule::MIN_LENGTH {
                    (self.min_length.unwrap_or(0), "less than minimum")
                } else {
                    (self.max_length.unwrap_or(0), "more than maximum")
                };
                format!(
                    "value {} has length {len}, {what} length {limit}",
                    show_value(col, row)
                )
            }
            bound_rule => {
                let shown = m
                    .bound
                    .and_then(|b| self.bounds.get(b))
                    .map_or("?", |b| b.shown.as_str());
                let (what, bound) = match bound_rule {
                    rule::MINIMUM => ("is less than", "minimum"),
                    rule::MAXIMUM => ("is greater than", "maximum"),
                    rule::EXCLUSIVE_MINIMUM => ("is not greater than", "exclusive minimum"),
                    _ => ("is not less than", "exclusive maximum"),
                };
                let value = show_value(col, row);
                if value == "NaN" {
                    format!("value NaN is not a number, so not within {bound} {shown}")
                } else {
                    format!("value {value} {what} {bound} {shown}")
                }
            }
        }
    }
}

fn internal(what: &str, col: &ArrayRef) -> ContractError {
    ContractError::Internal(format!(
        "{what} check got a {} column",
        types::type_name(col.data_type())
    ))
}

/// `bits` restricted to non-null rows.
fn with_valid(bits: &BooleanBuffer, valid: Option<&NullBuffer>) -> BooleanBuffer {
    match valid {
        Some(v) => bits & v.inner(),
        None => bits.clone(),
    }
}

fn compare(op: Op, lhs: &ArrayRef, rhs: &Scalar<ArrayRef>) -> Result<BooleanArray> {
    Ok(match op {
        Op::Lt => cmp::lt(lhs, rhs)?,
        Op::LtEq => cmp::lt_eq(lhs, rhs)?,
        Op::Gt => cmp::gt(lhs, rhs)?,
        Op::GtEq => cmp::gt_eq(lhs, rhs)?,
    })
}

/// The `unique` mask of column `ci` for the rows marked `duplicate`; `None` if there are none.
fn unique_mask(ci: usize, duplicate: &[bool]) -> Option<Mask> {
    let bits = BooleanBuffer::collect_bool(duplicate.len(), |i| duplicate[i]);
    let count = bits.count_set_bits();
    (count > 0).then_some(Mask {
        column: ci,
        rule: rule::UNIQUE,
        bits,
        count,
        lengths: None,
        bound: None,
    })
}

/// A bound as messages show it: dates and times as ISO text, numbers as numbers.
pub(crate) fn show_bound(limit: f64, target: &DataType) -> String {
    match native_bound(limit, target) {
        Some(n) if types::is_temporal(target) => show_value(n.as_ref(), 0),
        _ => shown_number(limit),
    }
}

/// The bound as a one-row array of `target`, when that is exact: integral
/// bounds on integer columns, any bound on Float64, temporal bounds (stored
/// in the type's physical unit); and on narrower floats, rounded to their width.
fn native_bound(limit: f64, target: &DataType) -> Option<ArrayRef> {
    let strict = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    if types::is_temporal(target) {
        if limit.fract() != 0.0 || limit.abs() > 9.0e15 {
            return None;
        }
        let physical: ArrayRef = match target {
            DataType::Date32 => Arc::new(Int32Array::from(vec![i32::try_from(limit as i64).ok()?])),
            _ => Arc::new(Int64Array::from(vec![limit as i64])),
        };
        return cast_with_options(&physical, target, &strict).ok();
    }
    let as_f64: ArrayRef = Arc::new(Float64Array::from(vec![limit]));
    let native = cast_with_options(&as_f64, target, &strict).ok()?;
    // A narrower float column holds each value rounded to its width; the bound, written in
    // decimal like the data, is rounded the same way (`0.1` in a Float32 column equals a
    // maximum of 0.1, which compared as Float64 it would exceed).
    if matches!(target, DataType::Float32 | DataType::Float16) && limit.is_finite() {
        return Some(native);
    }
    let back = cast_with_options(&native, &DataType::Float64, &strict).ok()?;
    let back = back.as_primitive_opt::<arrow::datatypes::Float64Type>()?;
    (back.len() == 1 && back.is_valid(0) && back.value(0) == limit).then_some(native)
}

/// Lengths per row: characters for strings, bytes for binary, items for lists.
fn lengths(col: &ArrayRef) -> Result<ArrayRef> {
    match Strs::new(col.as_ref()) {
        // Arrow's `length` counts bytes; they are characters only for ASCII.
        Some(s) if !s.is_ascii() => {
            let nulls = col.logical_nulls();
            // Null slots may hold anything; their length is never compared.
            let counts = (0..col.len()).map(|i| {
                if nulls.as_ref().is_none_or(|n| n.is_valid(i)) {
                    s.value(i).chars().count()
                } else {
                    0
                }
            });
            Ok(match s {
                Strs::Large(_) => Arc::new(Int64Array::from_iter_values(
                    counts.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                )) as ArrayRef,
                _ => Arc::new(Int32Array::from_iter_values(
                    counts.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
                )),
            })
        }
        _ => Ok(length(col.as_ref())?),
    }
}

/// `n` as a one-row array of the lengths' type (Int32 or Int64).
fn length_scalar(n: u64, lengths_type: &DataType) -> Result<ArrayRef> {
    Ok(match lengths_type {
        // A limit beyond Int32 compares as the largest Int32: no Int32 length exceeds it.
        DataType::Int32 => Arc::new(Int32Array::from(vec![i32::try_from(n).unwrap_or(i32::MAX)])),
        DataType::Int64 => Arc::new(Int64Array::from(vec![i64::try_from(n).unwrap_or(i64::MAX)])),
        other => {
            return Err(ContractError::Internal(format!(
                "length kernel returned {}",
                types::type_name(other)
            )));
        }
    })
}

fn length_at(lengths: &dyn Array, row: usize) -> i64 {
    if let Some(a) = lengths.as_primitive_opt::<arrow::datatypes::Int32Type>() {
        i64::from(a.value(row))
    } else if let Some(a) = lengths.as_primitive_opt::<Int64Type>() {
        a.value(row)
    } else {
        0
    }
}

/// A number for a message: as people write it (`-5`, `0.25`), and in scientific notation
/// where the decimal form would run to dozens of digits (`-1e-300`, `1e20`).
fn shown_number(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v };
    if v.is_finite() && v != 0.0 && (v.abs() < 1e-6 || v.abs() >= 1e16) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A value for a message: strings quoted, long values cut.
fn show_value(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "null".to_string();
    }
    if let Some(s) = Strs::new(array) {
        return quoted(s.value(row));
    }
    // Floats as people write them (`-5`, not Arrow's `-5.0`), like the bounds.
    if let Some(a) = array.as_primitive_opt::<arrow::datatypes::Float64Type>() {
        return shown_number(a.value(row));
    }
    if let Some(a) = array.as_primitive_opt::<arrow::datatypes::Float32Type>() {
        let v = a.value(row);
        return format!("{}", if v == 0.0 { 0.0 } else { v });
    }
    let quoted = matches!(array.data_type(), DataType::Dictionary(_, v) if types::is_string(v));
    let text = match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(f) => f.value(row).to_string(),
        Err(_) => "?".to_string(),
    };
    if quoted {
        self::quoted(&text)
    } else {
        cut(&text)
    }
}

/// `s` in double quotes, cut and escaped as `str::escape_debug` does (control characters,
/// both quotes and backslashes escaped); plain short ASCII, the usual value, is copied as is.
fn quoted(s: &str) -> String {
    let plain = s.len() <= MESSAGE_VALUE_CHARS_MAX
        && s.bytes()
            .all(|b| (b' '..=b'~').contains(&b) && !matches!(b, b'"' | b'\'' | b'\\'));
    if plain {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return out;
    }
    format!("\"{}\"", cut(s).escape_debug())
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(MESSAGE_VALUE_CHARS_MAX) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

fn empty_violations(rows: usize) -> Result<ListArray> {
    Ok(ListArray::try_new(
        violation_item_field(),
        OffsetBuffer::new_zeroed(rows),
        new_empty_array(&DataType::Struct(violation_fields())),
        None,
    )?)
}

/// Read access to the three string encodings without copying into one.
#[derive(Clone, Copy)]
pub(crate) enum Strs<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Strs<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Option<Strs<'a>> {
        match array.data_type() {
            DataType::Utf8 => array.as_string_opt::<i32>().map(Strs::Utf8),
            DataType::LargeUtf8 => array.as_string_opt::<i64>().map(Strs::Large),
            DataType::Utf8View => array.as_string_view_opt().map(Strs::View),
            _ => None,
        }
    }

    pub(crate) fn value(&self, i: usize) -> &'a str {
        match self {
            Strs::Utf8(a) => a.value(i),
            Strs::Large(a) => a.value(i),
            Strs::View(a) => a.value(i),
        }
    }

    fn is_ascii(&self) -> bool {
        match self {
            Strs::Utf8(a) => a.is_ascii(),
            Strs::Large(a) => a.is_ascii(),
            Strs::View(a) => a.is_ascii(),
        }
    }
}

/// Integers written as whole numbers in another notation (`5.0`, `1e1`, `-0.0`), which
/// Arrow's text-to-integer cast leaves null: they are the integer they equal, as they are
/// when CSV inference reads the column as floats. Read exactly, digit by digit: `10.5` and
/// `5.00000000000000001` stay null (`type`), as does what the column cannot hold.
fn integral_text(input: &ArrayRef, cast: ArrayRef) -> Result<ArrayRef> {
    let Some(strs) = Strs::new(input.as_ref()) else {
        return Ok(cast);
    };
    if cast.null_count() == input.null_count() {
        return Ok(cast);
    }
    let whole = Int64Array::from_iter((0..input.len()).map(|i| {
        if input.is_null(i) || cast.is_valid(i) {
            return None;
        }
        exact_integer(strs.value(i)).and_then(|v| i64::try_from(v).ok())
    }));
    if whole.null_count() == whole.len() {
        return Ok(cast);
    }
    let safe = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    let whole = cast_with_options(&whole, cast.data_type(), &safe)?;
    let keep = arrow::compute::is_not_null(&cast)?;
    Ok(arrow::compute::kernels::zip::zip(&keep, &cast, &whole)?)
}

/// `cast`, text read as booleans, with the words Arrow accepts cut short (`tru`, `fals`,
/// `ye`, `of`) set to null: the `type` rule takes `true`/`false`, `t`/`f`, `yes`/`no`,
/// `y`/`n`, `on`/`off` and `1`/`0`, in any case.
fn null_boolean_prefixes(input: &ArrayRef, cast: ArrayRef) -> Result<ArrayRef> {
    let Some(strs) = Strs::new(input.as_ref()) else {
        return Ok(cast);
    };
    let cut_short = |text: &str| {
        let t = text.trim();
        ["tr", "tru", "ye", "fa", "fal", "fals", "of"]
            .iter()
            .any(|p| t.eq_ignore_ascii_case(p))
    };
    let cut = BooleanArray::from(
        (0..cast.len())
            .map(|i| cast.is_valid(i) && cut_short(strs.value(i)))
            .collect::<Vec<_>>(),
    );
    if cut.true_count() == 0 {
        return Ok(cast);
    }
    Ok(arrow::compute::nullif(&cast, &cut)?)
}

/// Text numbers in exponent notation (`1e2`, `-0.1E-1`) written out plainly (`100`,
/// `-0.01`), the rest as they are; `None` when no value has an exponent. Arrow reads
/// decimals from plain digits only.
fn without_exponents(input: &ArrayRef) -> Result<Option<ArrayRef>> {
    let Some(strs) = Strs::new(input.as_ref()) else {
        return Ok(None);
    };
    let has_exponent = |i: usize| input.is_valid(i) && strs.value(i).contains(['e', 'E']);
    if !(0..input.len()).any(has_exponent) {
        return Ok(None);
    }
    let plain: arrow::array::StringArray = (0..input.len())
        .map(|i| {
            input.is_valid(i).then(|| {
                let v = strs.value(i);
                if has_exponent(i) {
                    plain_decimal(v).unwrap_or_else(|| v.to_string())
                } else {
                    v.to_string()
                }
            })
        })
        .collect();
    Ok(Some(Arc::new(plain)))
}

/// `1.5e3` as `1500`, `25e-3` as `0.025`: the same number without an exponent; `None` when
/// the text is not a number in exponent notation (or its exponent is beyond any decimal).
fn plain_decimal(text: &str) -> Option<String> {
    let t = text.trim();
    let (sign, t) = match t.as_bytes().first()? {
        b'-' => ("-", &t[1..]),
        b'+' => ("", &t[1..]),
        _ => ("", t),
    };
    let (mantissa, exponent) = t.split_once(['e', 'E'])?;
    let exponent: i32 = exponent.parse().ok().filter(|e: &i32| e.abs() <= 100)?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let point = i32::try_from(whole.len()).ok()? + exponent;
    let len = i32::try_from(digits.len()).ok()?;
    Some(if point <= 0 {
        format!(
            "{sign}0.{}{digits}",
            "0".repeat(usize::try_from(-point).ok()?)
        )
    } else if point >= len {
        format!(
            "{sign}{digits}{}",
            "0".repeat(usize::try_from(point - len).ok()?)
        )
    } else {
        let (int, frac) = digits.split_at(usize::try_from(point).ok()?);
        format!("{sign}{int}.{frac}")
    })
}

/// Whether number text is infinity spelled out (`inf`, `+Infinity`, `-INF`), as Rust's and
/// Arrow's float readers accept it.
fn spells_infinity(text: &str) -> bool {
    let t = text.trim();
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity")
}

/// The integer that decimal text (`5.0`, `-1.20e2`, `+7`) writes exactly; `None` when it
/// has a fraction, is not a number, or needs more than 38 digits.
fn exact_integer(text: &str) -> Option<i128> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(at) => (&t[..at], t[at + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digit = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digit(whole) || !digit(fraction) {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    // The point falls after `whole` moved by the exponent, counted in `digits`, which lost
    // the leading zeros.
    let leading = whole.len() + fraction.len() - digits.len();
    let point = i64::try_from(whole.len())
        .ok()?
        .checked_add(exponent)?
        .checked_sub(i64::try_from(leading).ok()?)?;
    if digits.is_empty() {
        return Some(0);
    }
    if point <= 0 {
        return None;
    }
    let point = usize::try_from(point).ok()?;
    let (int, rest) = if point >= digits.len() {
        if point > 38 {
            return None;
        }
        (format!("{digits}{}", "0".repeat(point - digits.len())), "")
    } else {
        (digits[..point].to_string(), &digits[point..])
    };
    if !rest.bytes().all(|b| b == b'0') || int.len() > 38 {
        return None;
    }
    let v: i128 = int.parse().ok()?;
    Some(if negative { -v } else { v })
}

/// For a timestamp or time type coarser than nanoseconds: the nanosecond type to read text
/// at again, and how many fractional digits the type holds.
fn finer_than(to: &DataType) -> Option<(DataType, usize)> {
    use arrow::datatypes::TimeUnit;
    let digits = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    match to {
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Nanosecond => Some((
            DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()),
            digits(unit),
        )),
        DataType::Time32(unit) | DataType::Time64(unit) if *unit != TimeUnit::Nanosecond => {
            Some((DataType::Time64(TimeUnit::Nanosecond), digits(unit)))
        }
        _ => None,
    }
}

/// Whether some value of the text column `input` has a fraction of more than `digits`
/// digits: a scan that spares the second reading of columns that cannot be cut. A column
/// whose text holds no `.` at all (the usual case) is passed over in one `memchr`.
fn has_more_fraction_digits(input: &ArrayRef, digits: usize) -> bool {
    let Some(strs) = Strs::new(input.as_ref()) else {
        return true;
    };
    let no_point = match strs {
        Strs::Utf8(a) => memchr::memchr(b'.', a.value_data()).is_none(),
        Strs::Large(a) => memchr::memchr(b'.', a.value_data()).is_none(),
        Strs::View(_) => false,
    };
    if no_point {
        return false;
    }
    (0..input.len()).any(|i| {
        let v = strs.value(i).as_bytes();
        memchr::memchr_iter(b'.', v).any(|at| {
            v[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count()
                > digits
        })
    })
}

/// `cast` (the contract's type made from `input`) with the values the cast changed set to
/// null, so the `type` rule rejects them like values that do not convert at all:
///
/// * a number into an integer or decimal that cannot hold it exactly (10.5 → 10, 123.456 →
///   `decimal(5,2)`), checked by casting back and comparing (`-0.0` counts as `0`);
/// * text into a decimal with more digits after the point than its scale (`"123.456"`),
///   checked by reading the text at a larger scale;
/// * a time zone–less timestamp with a time of day into a date, and text holding one.
///
/// A number into a float becomes the nearest float (floats are approximate by definition,
/// and 0.1 is not exactly 0.1 in either width), unless it is too large for the float and
/// would become infinite.
fn null_lossy(input: &ArrayRef, cast: ArrayRef) -> Result<ArrayRef> {
    use arrow::compute::kernels::cmp::neq;
    let from = input.data_type();
    let to = cast.data_type().clone();
    let safe = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    let text = matches!(
        from,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    let exact_number =
        to.is_integer() || matches!(to, DataType::Decimal128(..) | DataType::Decimal256(..));
    let date = matches!(to, DataType::Date32 | DataType::Date64);
    // A date made from a zoned timestamp is its local date, but a date cast back is UTC
    // midnight: comparable only where local is UTC.
    let zoneless = |t: &DataType| match t {
        DataType::Timestamp(_, Some(tz)) => matches!(tz.as_ref(), "UTC" | "+00:00" | "Z"),
        _ => true,
    };
    let changed = if (from.is_numeric() || text) && to.is_floating() {
        // Floats are approximate: the nearest float is the value, except where a finite
        // value overflows the type (3.4e39 into a 32-bit float) and would become infinite.
        // The input is read again only when some converted value is infinite.
        let infinite = |a: &ArrayRef| -> Option<BooleanArray> {
            let a = cast_with_options(a, &DataType::Float64, &safe).ok()?;
            let a = a.as_primitive_opt::<arrow::datatypes::Float64Type>()?;
            Some(BooleanArray::from_unary(a, f64::is_infinite))
        };
        let Some(is) = infinite(&cast).filter(|is| is.true_count() > 0) else {
            return Ok(cast);
        };
        // Text was infinite only where it spells infinity (`inf`, `-Infinity`): `1e309`
        // reads as infinite in any width, and is a finite number too large for it.
        let was = match Strs::new(input.as_ref()) {
            Some(strs) => Some(BooleanArray::from(
                (0..input.len())
                    .map(|i| input.is_valid(i) && spells_infinity(strs.value(i)))
                    .collect::<Vec<_>>(),
            )),
            None => infinite(input),
        };
        let Some(was) = was else {
            return Ok(cast);
        };
        arrow::compute::and(&is, &arrow::compute::not(&was)?)?
    } else if from.is_numeric() && exact_number {
        // -0.0 + 0.0 is +0.0: a float's negative zero is not a changed value.
        let input = if from.is_floating() {
            let zero =
                cast_with_options(&arrow::array::Float64Array::from(vec![0.0]), from, &safe)?;
            arrow::compute::kernels::numeric::add(input, &arrow::array::Scalar::new(zero))?
        } else {
            Arc::clone(input)
        };
        match cast_with_options(&cast, from, &safe) {
            Ok(back) => neq(&back, &input)?,
            Err(_) => return Ok(cast),
        }
    } else if from.is_temporal() && to.is_temporal() && zoneless(from) && zoneless(&to) {
        match cast_with_options(&cast, from, &safe) {
            Ok(back) => neq(&back, input)?,
            Err(_) => return Ok(cast),
        }
    } else if text && let DataType::Decimal128(precision, scale) = to {
        // Read at a larger scale (a 256-bit decimal keeps the integer digits and 38 more
        // decimals), then compare.
        let wide_scale = (76 - (precision as i16 - scale as i16)).clamp(scale as i16, 76) as i8;
        let wide = DataType::Decimal256(76, wide_scale);
        match (
            cast_with_options(input, &wide, &safe),
            cast_with_options(&cast, &wide, &safe),
        ) {
            (Ok(read), Ok(kept)) => neq(&read, &kept)?,
            _ => return Ok(cast),
        }
    } else if text && date {
        let instant = DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None);
        match (
            cast_with_options(input, &instant, &safe),
            cast_with_options(&cast, &instant, &safe),
        ) {
            (Ok(read), Ok(midnight)) => neq(&read, &midnight)?,
            _ => return Ok(cast),
        }
    } else if text
        && let Some((fine, digits)) = finer_than(&to)
        && has_more_fraction_digits(input, digits)
    {
        // Text with more fractional digits than the unit holds (`.1234567` into
        // microseconds) is cut when read: read it again in nanoseconds and compare. Instants
        // outside the nanosecond range read as null there and count as unchanged.
        match (
            cast_with_options(input, &fine, &safe),
            cast_with_options(&cast, &fine, &safe),
        ) {
            (Ok(read), Ok(kept)) => neq(&read, &kept)?,
            _ => return Ok(cast),
        }
    } else {
        return Ok(cast);
    };
    if changed.true_count() == 0 {
        return Ok(cast);
    }
    Ok(arrow::compute::nullif(&cast, &changed)?)
}

#[cfg(test)]
mod tests {
    use super::{cut, exact_integer, plain_decimal, quoted, shown_number};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn quoted_values_read_as_escaped_debug_text(s in ".{0,90}|[ -~]{70,90}") {
            prop_assert_eq!(quoted(&s), format!("\"{}\"", cut(&s).escape_debug()));
        }
    }

    #[test]
    fn numbers_in_messages_stay_short() {
        assert_eq!(shown_number(-1e-300), "-1e-300");
        assert_eq!(shown_number(1e20), "1e20");
        assert_eq!(shown_number(-5.0), "-5");
        assert_eq!(shown_number(0.25), "0.25");
        assert_eq!(shown_number(-0.0), "0");
    }

    #[test]
    fn exponents_are_written_out() {
        for (text, want) in [
            ("1e2", Some("100")),
            ("0.1e-1", Some("0.01")),
            ("-2.5E1", Some("-25")),
            ("+12.5e-1", Some("1.25")),
            ("25e-3", Some("0.025")),
            (".5e1", Some("5")),
            ("1.5", None),
            ("e5", None),
            ("1e", None),
            ("1ex", None),
            ("1e999", None),
        ] {
            assert_eq!(plain_decimal(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn whole_numbers_are_read_exactly() {
        for (text, want) in [
            ("5.0", Some(5)),
            ("1e1", Some(10)),
            ("-0.0", Some(0)),
            ("+7", Some(7)),
            ("-1.20e2", Some(-120)),
            ("0012", Some(12)),
            ("120e-1", Some(12)),
            ("9007199254740993.0", Some(9_007_199_254_740_993)),
            ("5.00000000000000001", None),
            ("10.5", None),
            ("1e-1", None),
            ("1e99999999999999999999", None),
            ("1e9223372036854775807", None),
            ("1e40", None),
            ("abc", None),
            ("", None),
            (".", None),
            ("inf", None),
        ] {
            assert_eq!(exact_integer(text), want, "{text}");
        }
    }
}
