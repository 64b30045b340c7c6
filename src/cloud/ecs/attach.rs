//! AttachNetworkInterface: asks ECS to attach an ENI to an instance. The
//! answer comes at once; the ENI then goes Attaching → InUse (or back to
//! Available when the attach fails), which the caller observes with Describe.
//!
//! `TrunkNetworkInstanceId` and `WaitForNetworkConfigurationReady` are
//! documented as unavailable / no longer supported and are never sent.

use super::RequestIdOnly;
use crate::cloud::{ApiResponse, CloudError, EcsClient, Params};

#[derive(Debug, Clone, Default)]
pub struct AttachNetworkInterface {
    pub network_interface_id: String,
    pub instance_id: String,
    /// Only for instance families with several network cards.
    pub network_card_index: Option<u32>,
}

impl AttachNetworkInterface {
    pub const ACTION: &'static str = "AttachNetworkInterface";

    pub fn params(&self) -> Params {
        Params::new()
            .set("NetworkInterfaceId", &self.network_interface_id)
            .set("InstanceId", &self.instance_id)
            .set_opt("NetworkCardIndex", self.network_card_index)
    }
}

impl EcsClient {
    pub async fn attach_network_interface(
        &self,
        request: &AttachNetworkInterface,
    ) -> Result<ApiResponse<RequestIdOnly>, CloudError> {
        self.call(AttachNetworkInterface::ACTION, request.params())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_only_supported_parameters() {
        let p = AttachNetworkInterface {
            network_interface_id: "eni-1".into(),
            instance_id: "i-1".into(),
            network_card_index: Some(1),
        }
        .params();
        assert_eq!(p.get("NetworkCardIndex"), Some("1"));
        assert!(
            p.pairs()
                .iter()
                .all(|(k, _)| !k.starts_with("Trunk") && !k.starts_with("WaitFor"))
        );
        let p = AttachNetworkInterface {
            network_card_index: None,
            ..Default::default()
        }
        .params();
        assert_eq!(p.get("NetworkCardIndex"), None);
    }
}
