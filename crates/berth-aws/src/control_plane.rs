//! SageMaker's control-plane operations (`POST /` with `X-Amz-Target: SageMaker.<Operation>`,
//! dispatched in `lib.rs`): models and lists here; endpoint configs and endpoints in
//! `endpoint_shapes.rs`, deployment guardrails in `guardrails.rs`, inference experiments in
//! `experiments.rs`.

use crate::aws_json::{enum_error, list_query, name, parse, reply, secs, tags, unsupported, wire_tags};
use crate::endpoint_shapes::{create_endpoint_config, describe_endpoint, describe_endpoint_config};
use crate::error::EdgeError;
use crate::wire::{self, ContainerDefinition};
use crate::{unknown_operation, Edge};
use berth_control::{CreateEndpoint, CreateModel, DesiredWeightAndCapacity, UpdateEndpoint, VariantProperty};
use berth_domain::{ContainerSpec, Endpoint, EndpointConfig, ExecutionMode, Model, S3DataSource};
use serde_json::Value;

/// A SageMaker control-plane operation (`X-Amz-Target: SageMaker.<op>`).
pub(crate) async fn operation(edge: &Edge, op: &str, body: &[u8]) -> Result<Value, EdgeError> {
    let c = &edge.controller;
    match op {
        "CreateModel" => {
            let mut input: wire::CreateModelInput = parse(body)?;
            crate::registry_api::resolve_packages(c, &mut input).await?;
            reply(wire::ArnOutput::ModelArn(c.create_model(create_model(input)?).await?.arn))
        }
        "DescribeModel" => reply(describe_model(&c.describe_model(&name(body, "ModelName")?).await?)),
        "ListModels" => {
            let page = c.list_models(list_query(parse(body)?, false)?).await?;
            let summary =
                |m: &Model| wire::ModelSummary { model_name: m.name.clone(), model_arn: m.arn.clone(), creation_time: secs(m.created) };
            reply(wire::ListModelsOutput { models: page.items.iter().map(summary).collect(), next_token: page.next_token })
        }
        "DeleteModel" => reply(c.delete_model(&name(body, "ModelName")?).await.map(|_| wire::Empty {})?),

        "CreateEndpointConfig" => {
            let cfg = c.create_endpoint_config(create_endpoint_config(parse(body)?)?).await?;
            reply(wire::ArnOutput::EndpointConfigArn(cfg.arn))
        }
        "DescribeEndpointConfig" => reply(describe_endpoint_config(&c.describe_endpoint_config(&name(body, "EndpointConfigName")?).await?)),
        "ListEndpointConfigs" => {
            let page = c.list_endpoint_configs(list_query(parse(body)?, false)?).await?;
            let summary = |e: &EndpointConfig| wire::EndpointConfigSummary {
                endpoint_config_name: e.name.clone(),
                endpoint_config_arn: e.arn.clone(),
                creation_time: secs(e.created),
            };
            reply(wire::ListEndpointConfigsOutput {
                endpoint_configs: page.items.iter().map(summary).collect(),
                next_token: page.next_token,
            })
        }
        "DeleteEndpointConfig" => reply(c.delete_endpoint_config(&name(body, "EndpointConfigName")?).await.map(|_| wire::Empty {})?),

        "CreateEndpoint" => {
            let input: wire::CreateEndpointInput = parse(body)?;
            let deployment_config = input.deployment_config.map(crate::guardrails::deployment_config).transpose()?;
            let req = CreateEndpoint {
                name: input.endpoint_name,
                config_name: input.endpoint_config_name,
                tags: tags(input.tags),
                deployment_config,
            };
            reply(wire::ArnOutput::EndpointArn(c.create_endpoint(req).await?.arn))
        }
        "DescribeEndpoint" => reply(describe_endpoint(&c.describe_endpoint(&name(body, "EndpointName")?).await?)),
        "ListEndpoints" => {
            let page = c.list_endpoints(list_query(parse(body)?, true)?).await?;
            let summary = |e: &Endpoint| wire::EndpointSummary {
                endpoint_name: e.name.clone(),
                endpoint_arn: e.arn.clone(),
                creation_time: secs(e.created),
                last_modified_time: secs(e.modified),
                endpoint_status: e.status.as_str(),
            };
            reply(wire::ListEndpointsOutput { endpoints: page.items.iter().map(summary).collect(), next_token: page.next_token })
        }
        "DeleteEndpoint" => reply(c.delete_endpoint(&name(body, "EndpointName")?).await.map(|_| wire::Empty {})?),
        "UpdateEndpoint" => {
            let input: wire::UpdateEndpointInput = parse(body)?;
            let deployment_config = input.deployment_config.map(crate::guardrails::deployment_config).transpose()?;
            let mut exclude = Vec::new();
            for p in input.exclude_retained_variant_properties.unwrap_or_default() {
                exclude.push(match p.variant_property_type.as_str() {
                    "DesiredInstanceCount" => VariantProperty::DesiredInstanceCount,
                    "DesiredWeight" => VariantProperty::DesiredWeight,
                    "DataCaptureConfig" => VariantProperty::DataCaptureConfig,
                    other => {
                        return Err(enum_error(
                            "VariantPropertyType",
                            other,
                            &["DesiredInstanceCount", "DesiredWeight", "DataCaptureConfig"],
                        ))
                    }
                });
            }
            let req = UpdateEndpoint {
                name: input.endpoint_name,
                config_name: input.endpoint_config_name,
                retain_all_variant_properties: input.retain_all_variant_properties.unwrap_or(false),
                exclude_retained_variant_properties: exclude,
                deployment_config,
                retain_deployment_config: input.retain_deployment_config.unwrap_or(false),
            };
            reply(wire::ArnOutput::EndpointArn(c.update_endpoint(req).await?.arn))
        }
        "UpdateEndpointWeightsAndCapacities" => {
            let input: wire::UpdateEndpointWeightsAndCapacitiesInput = parse(body)?;
            let mut desired = Vec::new();
            for d in input.desired_weights_and_capacities {
                let serverless = match d.serverless_update_config {
                    None => None,
                    Some(c) => {
                        // Values past what a u32 holds are refused, never wrapped.
                        let field = |name: &str, value: Option<u64>| -> Result<Option<u32>, EdgeError> {
                            value.map(u32::try_from).transpose().map_err(|_| {
                                EdgeError::validation(format!(
                                    "1 validation error detected: Value '{}' at 'serverlessUpdateConfig.{name}' failed to satisfy constraint: Member must have value between 1 and 200",
                                    value.unwrap_or_default()
                                ))
                            })
                        };
                        Some((field("maxConcurrency", c.max_concurrency)?, field("provisionedConcurrency", c.provisioned_concurrency)?))
                    }
                };
                desired.push(DesiredWeightAndCapacity {
                    variant: d.variant_name,
                    weight: d.desired_weight,
                    instance_count: d.desired_instance_count,
                    serverless,
                });
            }
            reply(wire::ArnOutput::EndpointArn(c.update_weights_and_capacities(&input.endpoint_name, desired).await?.arn))
        }

        "AddTags" => {
            let input: wire::AddTagsInput = parse(body)?;
            let added = c.add_tags(&input.resource_arn, tags(Some(input.tags))).await?;
            reply(wire::TagsOutput { tags: wire_tags(&added) })
        }
        "ListTags" => {
            let input: wire::ListTagsInput = parse(body)?;
            let _ = (input.next_token, input.max_results); // a resource has at most 50 tags: one page
            reply(wire::TagsOutput { tags: wire_tags(&c.list_tags(&input.resource_arn).await?) })
        }
        "DeleteTags" => {
            let input: wire::DeleteTagsInput = parse(body)?;
            c.delete_tags(&input.resource_arn, input.tag_keys).await?;
            reply(wire::Empty {})
        }
        _ => match crate::experiments::operation(c, op, body).await {
            Some(result) => result,
            None => match crate::transform_jobs::operation(c, op, body).await {
                Some(result) => result,
                None => match crate::processing_jobs::operation(c, op, body).await {
                    Some(result) => result,
                    None => match crate::monitoring_api::operation(c, op, body).await {
                        Some(result) => result,
                        None => match crate::recommendation_api::operation(c, op, body).await {
                            Some(result) => result,
                            None => match crate::registry_api::operation(c, op, body).await {
                                Some(result) => result,
                                None => match crate::components_api::operation(c, op, body).await {
                                    Some(result) => result,
                                    None => Err(unknown_operation(&format!("SageMaker.{op}"))),
                                },
                            },
                        },
                    },
                },
            },
        },
    }
}

// ---- models ---------------------------------------------------------------------------

fn container_spec(c: ContainerDefinition) -> Result<ContainerSpec, EdgeError> {
    unsupported(c.model_package_name.is_some(), "ModelPackageName")?;
    unsupported(c.inference_specification_name.is_some(), "InferenceSpecificationName")?;
    unsupported(c.additional_model_data_sources.is_some(), "AdditionalModelDataSources")?;
    let image = c.image.ok_or_else(|| EdgeError::validation("Image must be specified in every container definition."))?;
    if let Some(mode) = c.mode.as_deref() {
        if !matches!(mode, "SingleModel" | "MultiModel") {
            return Err(enum_error("Mode", mode, &["SingleModel", "MultiModel"]));
        }
    }
    let model_cache_disabled = match c.multi_model_config.as_ref().and_then(|m| m.model_cache_setting.as_deref()) {
        None | Some("Enabled") => false,
        Some("Disabled") => true,
        Some(other) => return Err(enum_error("ModelCacheSetting", other, &["Enabled", "Disabled"])),
    };
    if c.mode.as_deref() == Some("MultiModel") && c.model_data_url.is_none() {
        return Err(EdgeError::validation(
            "A container with Mode MultiModel needs ModelDataUrl: the S3 (or file://) prefix its models are under.",
        ));
    }
    if c.mode.as_deref() != Some("MultiModel") && c.multi_model_config.is_some() {
        return Err(EdgeError::validation("MultiModelConfig is only for a container with Mode MultiModel."));
    }
    if c.model_data_url.is_some() && c.model_data_source.is_some() {
        return Err(EdgeError::validation("Specify either ModelDataUrl or ModelDataSource, not both."));
    }
    let model_data_source = match c.model_data_source {
        None => None,
        Some(source) => {
            let s = source.s3_data_source;
            let prefix = match s.s3_data_type.as_str() {
                "S3Prefix" => true,
                "S3Object" => false,
                other => return Err(enum_error("S3DataType", other, &["S3Prefix", "S3Object"])),
            };
            let gzip = match s.compression_type.as_str() {
                "None" => false,
                "Gzip" => true,
                other => return Err(enum_error("CompressionType", other, &["None", "Gzip"])),
            };
            if prefix && gzip {
                return Err(EdgeError::validation("CompressionType Gzip needs S3DataType S3Object: a prefix holds uncompressed files."));
            }
            if !s.s3_uri.starts_with("s3://") {
                return Err(EdgeError::validation(format!("S3Uri '{}' must start with s3://.", s.s3_uri)));
            }
            Some(S3DataSource { s3_uri: s.s3_uri, prefix, gzip })
        }
    };
    Ok(ContainerSpec {
        hostname: c.container_hostname,
        image,
        model_data_url: c.model_data_url,
        environment: c.environment.unwrap_or_default(),
        mode: c.mode,
        model_data_source,
        model_cache_disabled,
    })
}

fn container_definition(c: &ContainerSpec) -> ContainerDefinition {
    ContainerDefinition {
        container_hostname: c.hostname.clone(),
        image: Some(c.image.clone()),
        mode: c.mode.clone(),
        model_data_url: c.model_data_url.clone(),
        model_data_source: c.model_data_source.as_ref().map(|s| wire::ModelDataSource {
            s3_data_source: wire::S3ModelDataSource {
                s3_uri: s.s3_uri.clone(),
                s3_data_type: if s.prefix { "S3Prefix" } else { "S3Object" }.into(),
                compression_type: if s.gzip { "Gzip" } else { "None" }.into(),
                model_access_config: None,
            },
        }),
        environment: (!c.environment.is_empty()).then(|| c.environment.clone()),
        model_package_name: None,
        multi_model_config: c.is_multi_model().then(|| wire::MultiModelConfig {
            model_cache_setting: Some(if c.model_cache_disabled { "Disabled" } else { "Enabled" }.into()),
        }),
        additional_model_data_sources: None,
        inference_specification_name: None,
    }
}

pub(crate) fn create_model(input: wire::CreateModelInput) -> Result<CreateModel, EdgeError> {
    let vpc_config = input
        .vpc_config
        .map(|v| berth_domain::VpcConfig::new(v.security_group_ids, v.subnets))
        .transpose()
        .map_err(|e| EdgeError::validation(e.to_string()))?;
    let (primary, containers) = match (input.primary_container, input.containers) {
        (Some(_), Some(_)) => return Err(EdgeError::validation("Specify either PrimaryContainer or Containers, not both.")),
        (Some(p), None) => (true, vec![container_spec(p)?]),
        (None, Some(list)) => (false, list.into_iter().map(container_spec).collect::<Result<_, _>>()?),
        (None, None) => (true, Vec::new()),
    };
    let inference_execution = match input.inference_execution_config.as_ref().map(|c| c.mode.as_str()) {
        None => None,
        Some("Serial") => Some(ExecutionMode::Serial),
        Some("Direct") => Some(ExecutionMode::Direct),
        Some(other) => return Err(enum_error("InferenceExecutionConfig.Mode", other, &["Serial", "Direct"])),
    };
    let model = Model {
        inference_execution,
        primary_container: primary,
        execution_role_arn: input.execution_role_arn,
        enable_network_isolation: input.enable_network_isolation,
        vpc_config,
        ..Model::new(&input.model_name, containers)
    };
    Ok(CreateModel { model, tags: tags(input.tags) })
}

fn describe_model(m: &Model) -> wire::DescribeModelOutput {
    let defs: Vec<ContainerDefinition> = m.containers.iter().map(container_definition).collect();
    wire::DescribeModelOutput {
        model_name: m.name.clone(),
        primary_container: m.primary_container.then(|| defs[0].clone()),
        containers: (!m.primary_container).then_some(defs),
        execution_role_arn: m.execution_role_arn.clone(),
        creation_time: secs(m.created),
        model_arn: m.arn.clone(),
        enable_network_isolation: m.enable_network_isolation.unwrap_or(false),
        vpc_config: m
            .vpc_config
            .as_ref()
            .map(|v| wire::VpcConfig { security_group_ids: v.security_group_ids.clone(), subnets: v.subnets.clone() }),
        inference_execution_config: m.inference_execution.map(|mode| wire::InferenceExecutionConfig { mode: mode.as_str().into() }),
    }
}
