//! Endpoint configs and endpoints between SageMaker's wire shapes and domain types.

use crate::aws_json::{secs, tags, unsupported};
use crate::error::EdgeError;
use crate::wire::{self, ProductionVariant};
use berth_control::CreateEndpointConfig;
use berth_domain::{
    AsyncInference, DataCapture, Endpoint, EndpointConfig, EndpointStatus, ManagedInstanceScaling, RoutingStrategy, ServerlessConfig,
    VariantSpec, VariantState,
};

// ---- endpoint configs -----------------------------------------------------------------

fn routing_strategy(r: Option<wire::RoutingConfig>) -> Result<Option<RoutingStrategy>, EdgeError> {
    match r.as_ref().map(|r| r.routing_strategy.as_str()) {
        None => Ok(None),
        Some("LEAST_OUTSTANDING_REQUESTS") => Ok(Some(RoutingStrategy::LeastOutstandingRequests)),
        Some("RANDOM") => Ok(Some(RoutingStrategy::Random)),
        Some(other) => Err(EdgeError::validation(format!(
            "RoutingStrategy '{other}' is not supported by berth; use LEAST_OUTSTANDING_REQUESTS or RANDOM."
        ))),
    }
}

pub(crate) fn strategy_name(s: RoutingStrategy) -> &'static str {
    match s {
        RoutingStrategy::LeastOutstandingRequests => "LEAST_OUTSTANDING_REQUESTS",
        RoutingStrategy::Random => "RANDOM",
    }
}

fn variant_spec(i: usize, v: ProductionVariant, shadow: bool) -> Result<VariantSpec, EdgeError> {
    let list = if shadow { "shadowProductionVariants" } else { "productionVariants" };
    let serverless = v.serverless_config.map(|c| serverless_config(&format!("{list}.{}.member.serverlessConfig", i + 1), c)).transpose()?;
    if serverless.is_some() {
        if v.instance_type.is_some() || v.initial_instance_count.is_some() {
            return Err(EdgeError::validation("A serverless variant (ServerlessConfig) takes no InstanceType or InitialInstanceCount."));
        }
        if shadow {
            return Err(EdgeError::validation("Shadow variants cannot be serverless in berth."));
        }
    }
    unsupported(v.accelerator_type.is_some(), "AcceleratorType")?;
    unsupported(v.instance_pools.is_some(), "InstancePools")?;
    let managed_scaling = v.managed_instance_scaling.map(managed_scaling).transpose()?;
    let missing = |m: &str| {
        EdgeError::validation(format!(
            "1 validation error detected: Value null at '{list}.{}.member.{m}' failed to satisfy constraint: Member must not be null",
            i + 1
        ))
    };
    let (instance_type, initial_instance_count) = match serverless {
        Some(_) => (String::new(), 0),
        None => (
            v.instance_type.ok_or_else(|| missing("instanceType"))?,
            v.initial_instance_count.ok_or_else(|| missing("initialInstanceCount"))?,
        ),
    };
    Ok(VariantSpec {
        // No model: the variant hosts inference components.
        model_name: v.model_name.unwrap_or_default(),
        instance_type,
        initial_instance_count,
        initial_weight: v.initial_variant_weight.unwrap_or(1.0),
        container_startup_timeout_secs: v.container_startup_health_check_timeout_in_seconds,
        model_data_download_timeout_secs: v.model_data_download_timeout_in_seconds,
        routing: routing_strategy(v.routing_config)?,
        name: v.variant_name,
        shadow,
        serverless,
        managed_scaling,
    })
}

fn managed_scaling(m: wire::ManagedInstanceScaling) -> Result<ManagedInstanceScaling, EdgeError> {
    unsupported(m.scale_in_policy.is_some(), "ManagedInstanceScaling.ScaleInPolicy")?;
    let enabled = match m.status.as_deref() {
        None | Some("DISABLED") => false,
        Some("ENABLED") => true,
        Some(other) => return Err(crate::aws_json::enum_error("ManagedInstanceScaling.Status", other, &["ENABLED", "DISABLED"])),
    };
    Ok(ManagedInstanceScaling { enabled, min_instances: m.min_instance_count, max_instances: m.max_instance_count })
}

pub(crate) fn managed_scaling_wire(m: &ManagedInstanceScaling) -> wire::ManagedInstanceScaling {
    wire::ManagedInstanceScaling {
        status: Some(if m.enabled { "ENABLED" } else { "DISABLED" }.into()),
        min_instance_count: m.min_instances,
        max_instance_count: m.max_instances,
        scale_in_policy: None,
    }
}

fn serverless_config(member: &str, w: wire::ServerlessConfig) -> Result<ServerlessConfig, EdgeError> {
    let c = ServerlessConfig {
        memory_mb: w.memory_size_in_mb,
        max_concurrency: w.max_concurrency,
        provisioned_concurrency: w.provisioned_concurrency,
    };
    c.validate(member).map_err(|e| EdgeError::validation(e.to_string()))?;
    Ok(c)
}

pub(crate) fn serverless_config_wire(c: &ServerlessConfig) -> wire::ServerlessConfig {
    wire::ServerlessConfig {
        memory_size_in_mb: c.memory_mb,
        max_concurrency: c.max_concurrency,
        provisioned_concurrency: c.provisioned_concurrency,
    }
}

pub(crate) fn create_endpoint_config(input: wire::CreateEndpointConfigInput) -> Result<CreateEndpointConfig, EdgeError> {
    unsupported(input.explainer_config.is_some(), "ExplainerConfig")?;
    let production = input.production_variants.into_iter().enumerate().map(|(i, v)| variant_spec(i, v, false));
    let shadows = input.shadow_production_variants.unwrap_or_default().into_iter().enumerate().map(|(i, v)| variant_spec(i, v, true));
    let variants = production.chain(shadows).collect::<Result<_, _>>()?;
    let data_capture = input.data_capture_config.map(data_capture).transpose()?;
    let async_inference = input.async_inference_config.map(async_inference).transpose()?;
    let config = EndpointConfig {
        kms_key_id: input.kms_key_id,
        data_capture,
        async_inference,
        execution_role_arn: input.execution_role_arn,
        ..EndpointConfig::new(&input.endpoint_config_name, variants)
    };
    Ok(CreateEndpointConfig { config, tags: tags(input.tags) })
}

pub(crate) fn describe_endpoint_config(c: &EndpointConfig) -> wire::DescribeEndpointConfigOutput {
    let wire = |v: &VariantSpec| ProductionVariant {
        variant_name: v.name.clone(),
        model_name: (!v.hosts_components()).then(|| v.model_name.clone()),
        initial_instance_count: v.serverless.is_none().then_some(v.initial_instance_count),
        instance_type: v.serverless.is_none().then(|| v.instance_type.clone()),
        initial_variant_weight: Some(v.initial_weight),
        model_data_download_timeout_in_seconds: v.model_data_download_timeout_secs,
        container_startup_health_check_timeout_in_seconds: v.container_startup_timeout_secs,
        routing_config: v.routing.map(|r| wire::RoutingConfig { routing_strategy: strategy_name(r).into() }),
        serverless_config: v.serverless.as_ref().map(serverless_config_wire),
        accelerator_type: None,
        instance_pools: None,
        managed_instance_scaling: v.managed_scaling.as_ref().map(managed_scaling_wire),
    };
    wire::DescribeEndpointConfigOutput {
        endpoint_config_name: c.name.clone(),
        endpoint_config_arn: c.arn.clone(),
        production_variants: c.variants.iter().filter(|v| !v.shadow).map(wire).collect(),
        shadow_production_variants: c.variants.iter().filter(|v| v.shadow).map(wire).collect(),
        kms_key_id: c.kms_key_id.clone(),
        execution_role_arn: c.execution_role_arn.clone(),
        data_capture_config: c.data_capture.as_ref().map(data_capture_wire),
        async_inference_config: c.async_inference.as_ref().map(async_inference_wire),
        creation_time: secs(c.created),
    }
}

// ---- endpoints ------------------------------------------------------------------------

pub(crate) fn describe_endpoint(e: &Endpoint) -> wire::DescribeEndpointOutput {
    let summary = |v: &VariantState| {
        let status = match e.status {
            EndpointStatus::Creating | EndpointStatus::SystemUpdating if v.current_instance_count == 0 => Some("Creating"),
            EndpointStatus::Updating if v.current_instance_count != v.desired_instance_count => Some("Updating"),
            EndpointStatus::Deleting => Some("Deleting"),
            _ => None,
        };
        wire::ProductionVariantSummary {
            variant_name: v.name.clone(),
            deployed_images: v
                .image_resolved
                .map(|t| wire::DeployedImage {
                    specified_image: v.container.image.clone(),
                    resolved_image: v.resolved_image.clone().unwrap_or_else(|| v.container.image.clone()),
                    resolution_time: secs(t),
                })
                .into_iter()
                .collect(),
            current_weight: v.current_weight,
            desired_weight: v.desired_weight,
            current_instance_count: v.serverless.is_none().then_some(v.current_instance_count),
            desired_instance_count: v.serverless.is_none().then_some(v.desired_instance_count),
            current_serverless_config: v.serverless.as_ref().map(serverless_config_wire),
            desired_serverless_config: v.serverless.as_ref().map(serverless_config_wire),
            variant_status: status
                .map(|s| wire::VariantStatus { status: s.into(), status_message: None, start_time: secs(e.modified) })
                .into_iter()
                .collect(),
            routing_config: Some(wire::RoutingConfig { routing_strategy: strategy_name(v.routing).into() }),
            managed_instance_scaling: v.managed_scaling.as_ref().map(managed_scaling_wire),
        }
    };
    wire::DescribeEndpointOutput {
        endpoint_name: e.name.clone(),
        endpoint_arn: e.arn.clone(),
        endpoint_config_name: e.config_name.clone(),
        production_variants: e.variants.iter().filter(|v| !v.shadow).map(summary).collect(),
        shadow_production_variants: e.variants.iter().filter(|v| v.shadow).map(summary).collect(),
        endpoint_status: e.status.as_str().into(),
        failure_reason: e.failure_reason.clone(),
        creation_time: secs(e.created),
        last_modified_time: secs(e.modified),
        last_deployment_config: e.last_deployment_config.as_ref().map(crate::guardrails::deployment_config_wire),
        data_capture_config: e.data_capture.as_ref().map(|c| wire::DataCaptureConfigSummary {
            enable_capture: c.enabled,
            capture_status: if c.enabled { "Started" } else { "Stopped" },
            current_sampling_percentage: c.sampling_percentage,
            destination_s3_uri: c.destination.clone(),
            kms_key_id: c.kms_key_id.clone().unwrap_or_default(),
        }),
        pending_deployment_summary: crate::guardrails::pending_deployment_summary(e),
        async_inference_config: e.async_inference.as_ref().map(async_inference_wire),
    }
}

fn data_capture(w: wire::DataCaptureConfig) -> Result<DataCapture, EdgeError> {
    let (mut input, mut output) = (false, false);
    for o in &w.capture_options {
        match o.capture_mode.as_str() {
            "Input" => input = true,
            "Output" => output = true,
            "InputAndOutput" => (input, output) = (true, true),
            other => return Err(crate::aws_json::enum_error("captureMode", other, &["Input", "Output", "InputAndOutput"])),
        }
    }
    let types = w.capture_content_type_header.unwrap_or_default();
    let c = DataCapture {
        enabled: w.enable_capture.unwrap_or(true),
        sampling_percentage: w.initial_sampling_percentage,
        destination: w.destination_s3_uri.trim_end_matches('/').to_string(),
        kms_key_id: w.kms_key_id,
        input,
        output,
        csv_types: types.csv_content_types,
        json_types: types.json_content_types,
    };
    c.validate().map_err(|e| EdgeError::validation(e.to_string()))?;
    Ok(c)
}

fn data_capture_wire(c: &DataCapture) -> wire::DataCaptureConfig {
    let modes: &[&str] = match (c.input, c.output) {
        (true, true) => &["Input", "Output"],
        (true, false) => &["Input"],
        _ => &["Output"],
    };
    let has_types = !c.csv_types.is_empty() || !c.json_types.is_empty();
    wire::DataCaptureConfig {
        enable_capture: Some(c.enabled),
        initial_sampling_percentage: c.sampling_percentage,
        destination_s3_uri: c.destination.clone(),
        kms_key_id: c.kms_key_id.clone(),
        capture_options: modes.iter().map(|m| wire::CaptureOption { capture_mode: (*m).into() }).collect(),
        capture_content_type_header: has_types
            .then(|| wire::CaptureContentTypeHeader { csv_content_types: c.csv_types.clone(), json_content_types: c.json_types.clone() }),
    }
}

fn async_inference(w: wire::AsyncInferenceConfig) -> Result<AsyncInference, EdgeError> {
    let out = w.output_config;
    let notifications = out.notification_config;
    let output_path = out.s3_output_path.ok_or_else(|| {
        EdgeError::validation("AsyncInferenceConfig.OutputConfig.S3OutputPath is required: berth writes each answer under it.")
    })?;
    Ok(AsyncInference {
        max_concurrent_per_instance: w.client_config.and_then(|c| c.max_concurrent_invocations_per_instance),
        output_path: output_path.trim_end_matches('/').to_string(),
        failure_path: out.s3_failure_path.map(|p| p.trim_end_matches('/').to_string()),
        kms_key_id: out.kms_key_id,
        success_topic: notifications.as_ref().and_then(|n| n.success_topic.clone()),
        error_topic: notifications.as_ref().and_then(|n| n.error_topic.clone()),
        include_response_in: notifications.map(|n| n.include_inference_response_in).unwrap_or_default(),
    })
}

fn async_inference_wire(a: &AsyncInference) -> wire::AsyncInferenceConfig {
    let notify = a.success_topic.is_some() || a.error_topic.is_some() || !a.include_response_in.is_empty();
    wire::AsyncInferenceConfig {
        client_config: a
            .max_concurrent_per_instance
            .map(|n| wire::AsyncInferenceClientConfig { max_concurrent_invocations_per_instance: Some(n) }),
        output_config: wire::AsyncInferenceOutputConfig {
            kms_key_id: a.kms_key_id.clone(),
            s3_output_path: Some(a.output_path.clone()),
            notification_config: notify.then(|| wire::AsyncInferenceNotificationConfig {
                success_topic: a.success_topic.clone(),
                error_topic: a.error_topic.clone(),
                include_inference_response_in: a.include_response_in.clone(),
            }),
            s3_failure_path: a.failure_path.clone(),
        },
    }
}
