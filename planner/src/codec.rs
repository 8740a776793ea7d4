//! Serializing Runink's plan pieces with `datafusion-proto`.
//!
//! DataFusion serializes its own nodes; this codec adds Runink's extension nodes and the
//! [`SourceTable`] provider. Each is written as a small JSON document (stable field
//! order, no maps with random order) so that compiling the same input twice gives the
//! same bytes. Expressions inside nodes (sink predicates) use DataFusion's own protobuf.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result as DfResult, TableReference};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::logical_plan::from_proto::parse_expr;
use datafusion_proto::logical_plan::to_proto::serialize_expr;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf::LogicalExprNode;
use prost::Message;
use runink_contracts::Contract;
use runink_engine::command::ExternalCommandExec;
use runink_engine::enforce::{ContractEnforceExec, EnforceMode};
use runink_engine::lineage::{LineageTapExec, TapKind};
use runink_engine::sink::SinkSpec;
use runink_engine::source::{FileLocation, SourceTable};
use serde::{Deserialize, Serialize};

use crate::nodes::{ContractEnforceNode, ExecStepNode, LineageTapNode, SinksNode};

/// The codec for Runink's nodes and tables.
#[derive(Debug, Default)]
pub struct RuninkCodec;

#[derive(Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
enum NodeWire {
    LineageTap {
        relation: String,
        kind: TapKind,
        /// Physical plans only: the tap reads an Arrow IPC *stream* file directly, which
        /// DataFusion's protobuf cannot tell from an IPC file (it decodes every Arrow scan as
        /// the file format), so the decoder turns the scan back into a stream scan.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        arrow_stream: bool,
    },
    ContractEnforce {
        contract: Box<Contract>,
        mode: EnforceMode,
        label: String,
    },
    ExecStep {
        step: String,
        command: String,
        schema: Schema,
    },
    Sinks {
        sinks: Vec<SinkSpec>,
        input_of: Vec<usize>,
        /// Base64 of each predicate's `LogicalExprNode`.
        predicates: Vec<Option<String>>,
    },
}

#[derive(Serialize, Deserialize)]
struct TableWire {
    name: String,
    location: FileLocation,
}

fn codec_err(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Plan(format!("runink codec: {what}: {e}"))
}

impl LogicalExtensionCodec for RuninkCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        let wire: NodeWire = serde_json::from_slice(buf).map_err(|e| codec_err("bad node", e))?;
        let one = || {
            inputs
                .first()
                .cloned()
                .ok_or_else(|| codec_err("node", "missing input"))
        };
        let node: Arc<dyn datafusion::logical_expr::UserDefinedLogicalNode> = match wire {
            NodeWire::LineageTap { relation, kind, .. } => Arc::new(LineageTapNode {
                input: one()?,
                relation,
                kind,
            }),
            NodeWire::ContractEnforce {
                contract,
                mode,
                label,
            } => Arc::new(ContractEnforceNode::try_new(
                one()?,
                Arc::new(*contract),
                mode,
                label,
            )?),
            NodeWire::ExecStep {
                step,
                command,
                schema,
            } => Arc::new(ExecStepNode::try_new(one()?, step, command, schema)?),
            NodeWire::Sinks {
                sinks,
                input_of,
                predicates,
            } => {
                let mut exprs = Vec::with_capacity(predicates.len());
                for p in predicates {
                    exprs.push(match p {
                        None => None,
                        Some(text) => {
                            let bytes = B64.decode(text).map_err(|e| codec_err("predicate", e))?;
                            let node = LogicalExprNode::decode(bytes.as_slice())
                                .map_err(|e| codec_err("predicate", e))?;
                            Some(
                                parse_expr(&node, ctx, self)
                                    .map_err(|e| codec_err("predicate", e))?,
                            )
                        }
                    });
                }
                Arc::new(SinksNode::try_new(inputs.to_vec(), sinks, input_of, exprs)?)
            }
        };
        Ok(Extension { node })
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        let any = node.node.as_any();
        let wire = if let Some(n) = any.downcast_ref::<LineageTapNode>() {
            NodeWire::LineageTap {
                relation: n.relation.clone(),
                kind: n.kind,
                arrow_stream: false,
            }
        } else if let Some(n) = any.downcast_ref::<ContractEnforceNode>() {
            NodeWire::ContractEnforce {
                contract: Box::new(n.contract.as_ref().clone()),
                mode: n.mode,
                label: n.label.clone(),
            }
        } else if let Some(n) = any.downcast_ref::<ExecStepNode>() {
            NodeWire::ExecStep {
                step: n.step.clone(),
                command: n.command.clone(),
                schema: n.output_schema().with_metadata(Default::default()),
            }
        } else if let Some(n) = any.downcast_ref::<SinksNode>() {
            let mut predicates = Vec::with_capacity(n.predicates.len());
            for p in &n.predicates {
                predicates.push(match p {
                    None => None,
                    Some(expr) => {
                        let proto =
                            serialize_expr(expr, self).map_err(|e| codec_err("predicate", e))?;
                        Some(B64.encode(proto.encode_to_vec()))
                    }
                });
            }
            NodeWire::Sinks {
                sinks: n.sinks.clone(),
                input_of: n.input_of.clone(),
                predicates,
            }
        } else {
            return Err(codec_err(
                "encode",
                format!("unknown extension node `{}`", node.node.name()),
            ));
        };
        serde_json::to_writer(buf, &wire).map_err(|e| codec_err("encode", e))
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        _table_ref: &TableReference,
        schema: SchemaRef,
        _ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let wire: TableWire = serde_json::from_slice(buf).map_err(|e| codec_err("bad table", e))?;
        Ok(Arc::new(SourceTable::new(wire.name, wire.location, schema)))
    }

    fn try_encode_table_provider(
        &self,
        _table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        let any: &dyn std::any::Any = &*node;
        let Some(table) = any.downcast_ref::<SourceTable>() else {
            return Err(codec_err(
                "encode",
                "only Runink source tables can be serialized",
            ));
        };
        let wire = TableWire {
            name: table.name.clone(),
            location: table.location.clone(),
        };
        serde_json::to_writer(buf, &wire).map_err(|e| codec_err("encode", e))
    }
}

/// The codec for Runink's physical operators, so stages holding them can be sent to slice
/// processes (`datafusion-distributed` encodes each stage's plan with it). An operator
/// decoded in a slice counts into counters of its own, which come back to the run as task
/// metrics. Sinks are not encoded: they commit in the process that runs the run.
#[derive(Debug, Default)]
pub struct RuninkPhysicalCodec;

// Operators travel as the logical nodes they were planned from (`NodeWire`): the same
// fields rebuild them.
impl PhysicalExtensionCodec for RuninkPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let wire: NodeWire =
            serde_json::from_slice(buf).map_err(|e| codec_err("bad operator", e))?;
        let [input] = inputs else {
            return Err(codec_err(
                "operator",
                format!("takes one input, got {}", inputs.len()),
            ));
        };
        let input = Arc::clone(input);
        Ok(match wire {
            NodeWire::LineageTap {
                relation,
                kind,
                arrow_stream,
            } => Arc::new(LineageTapExec::new(
                if arrow_stream {
                    // The scan sits under the tap, maybe below a repartition.
                    input
                        .transform_up(|node| {
                            Ok(match file_scan(&node) {
                                Some(scan) if scan.file_source().file_type() == "arrow" => {
                                    Transformed::yes(as_arrow_stream_scan(node)?)
                                }
                                _ => Transformed::no(node),
                            })
                        })?
                        .data
                } else {
                    input
                },
                relation,
                kind,
                Default::default(),
            )),
            NodeWire::ContractEnforce {
                contract,
                mode,
                label,
            } => Arc::new(
                ContractEnforceExec::try_new(
                    input,
                    Arc::new(*contract),
                    mode,
                    label,
                    Default::default(),
                )
                .map_err(|e| codec_err("contract enforcement", e))?,
            ),
            NodeWire::ExecStep {
                step,
                command,
                schema,
            } => Arc::new(ExternalCommandExec::new(
                input,
                step,
                command,
                Arc::new(schema),
            )),
            NodeWire::Sinks { .. } => {
                return Err(codec_err(
                    "operator",
                    "sinks run in the process that runs the run, not in a slice",
                ));
            }
        })
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let wire = if let Some(n) = node.downcast_ref::<LineageTapExec>() {
            NodeWire::LineageTap {
                relation: n.relation().to_string(),
                kind: n.kind(),
                arrow_stream: n.kind() == TapKind::Source
                    && n.children().first().is_some_and(|input| {
                        input
                            .exists(|node| {
                                Ok(file_scan(node).is_some_and(|scan| {
                                    scan.file_source().file_type() == ARROW_STREAM
                                }))
                            })
                            .unwrap_or(false)
                    }),
            }
        } else if let Some(n) = node.downcast_ref::<ContractEnforceExec>() {
            NodeWire::ContractEnforce {
                contract: Box::new(n.contract().as_ref().clone()),
                mode: n.mode(),
                label: n.label().to_string(),
            }
        } else if let Some(n) = node.downcast_ref::<ExternalCommandExec>() {
            NodeWire::ExecStep {
                step: n.step().to_string(),
                command: n.command().to_string(),
                schema: n
                    .schema()
                    .as_ref()
                    .clone()
                    .with_metadata(Default::default()),
            }
        } else {
            return Err(codec_err(
                "encode",
                format!("operator `{}` cannot run in a slice process", node.name()),
            ));
        };
        serde_json::to_writer(buf, &wire).map_err(|e| codec_err("encode", e))
    }
}

/// DataFusion's name for an Arrow IPC stream-format scan (`FileSource::file_type`).
const ARROW_STREAM: &str = "arrow_stream";

/// The file scan of a `DataSourceExec`, if `plan` is one.
fn file_scan(
    plan: &Arc<dyn ExecutionPlan>,
) -> Option<&datafusion::datasource::physical_plan::FileScanConfig> {
    plan.downcast_ref::<datafusion::datasource::source::DataSourceExec>()?
        .data_source()
        .downcast_ref()
}

/// `plan`, an Arrow scan decoded as the IPC file format, as a scan of the stream format
/// (same files, schema and projection).
fn as_arrow_stream_scan(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    use datafusion::datasource::physical_plan::{ArrowSource, FileScanConfigBuilder, FileSource};
    let Some(scan) = file_scan(&plan) else {
        return Err(codec_err(
            "arrow stream source",
            format!("expected a file scan below the tap, got `{}`", plan.name()),
        ));
    };
    let source = scan.file_source();
    let stream: Arc<dyn FileSource> = Arc::new(ArrowSource::new_stream_file_source(
        source.table_schema().clone(),
    ));
    let stream = match source.projection() {
        Some(projection) => stream
            .try_pushdown_projection(projection)?
            .unwrap_or(stream),
        None => stream,
    };
    // A stream cannot be read in parts, but the distributed planner hands a large file's
    // byte ranges to several tasks. Each range is given to exactly one task, so the task
    // holding the range that starts the file reads all of it, and the others read nothing.
    let mut groups = Vec::with_capacity(scan.file_groups.len());
    for group in &scan.file_groups {
        let mut files = Vec::with_capacity(group.len());
        for file in group.iter() {
            let mut file = file.clone();
            if let Some(range) = file.range.take()
                && range.start != 0
            {
                continue;
            }
            files.push(file);
        }
        groups.push(datafusion::datasource::physical_plan::FileGroup::new(files));
    }
    let config = FileScanConfigBuilder::from(scan.clone())
        .with_source(stream)
        .with_file_groups(groups)
        .build();
    Ok(datafusion::datasource::source::DataSourceExec::from_data_source(config))
}
