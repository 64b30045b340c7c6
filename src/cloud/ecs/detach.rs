//! DetachNetworkInterface: the ENI goes Detaching → Available.

use super::RequestIdOnly;
use crate::cloud::{ApiResponse, CloudError, EcsClient, Params};

#[derive(Debug, Clone, Default)]
pub struct DetachNetworkInterface {
    pub network_interface_id: String,
    pub instance_id: String,
}

impl DetachNetworkInterface {
    pub const ACTION: &'static str = "DetachNetworkInterface";

    pub fn params(&self) -> Params {
        Params::new()
            .set("NetworkInterfaceId", &self.network_interface_id)
            .set("InstanceId", &self.instance_id)
    }
}

impl EcsClient {
    pub async fn detach_network_interface(
        &self,
        request: &DetachNetworkInterface,
    ) -> Result<ApiResponse<RequestIdOnly>, CloudError> {
        self.call(DetachNetworkInterface::ACTION, request.params())
            .await
    }
}
