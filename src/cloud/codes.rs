//! Every ECS error code the agent can meet, classified once: retry with
//! backoff, wait for a state change then retry, or permanent — and for the
//! permanent ones, what a person should do about it.
//!
//! The table covers every code the API reference lists for
//! AttachNetworkInterface and DescribeNetworkInterfaceAttribute (a test reads
//! the reference's error tables, kept in `src/cloud/testdata/`, and fails on
//! an unclassified code), plus the API gateway's own codes that any action
//! can return (signature, credentials, clock, throttling, availability).

/// What the caller should do with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: send the same request again after a backoff.
    Retry,
    /// The ENI or instance is between states: wait until it settles, then
    /// decide again (the caller polls Describe; the client does not retry).
    WaitForState,
    /// Retrying cannot help; a person has to change something.
    Permanent,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    pub code: &'static str,
    pub class: ErrorClass,
    /// What it means and how to fix it, for the operator.
    pub remedy: &'static str,
}

use ErrorClass::{Permanent, Retry, WaitForState};

macro_rules! codes {
    ($($code:literal => $class:ident, $remedy:literal;)*) => {
        &[$(CodeInfo { code: $code, class: $class, remedy: $remedy }),*]
    };
}

/// The classification table, sorted by nothing in particular: look codes up
/// with [`lookup`].
pub static CODES: &[CodeInfo] = codes! {
    // --- transient: gateway and service availability --------------------------
    "Throttling" => Retry, "the ECS API throttled the request; it is retried with backoff. If it persists, lower the number of agents calling at once or raise the account's API quota";
    "Throttling.User" => Retry, "the account's API rate limit was reached; it is retried with backoff. Many instances starting at once share this budget";
    "Throttling.Api" => Retry, "this API's rate limit was reached; it is retried with backoff";
    "ServiceUnavailable" => Retry, "the ECS service is temporarily unavailable; it is retried with backoff";
    "InternalError" => Retry, "ECS hit an internal error; it is retried with backoff. If it persists, open a ticket with the RequestId";
    "UnknownError" => Retry, "ECS returned an unknown error; it is retried with backoff. If it persists, open a ticket with the RequestId";
    "Operation.Conflict" => Retry, "another operation on the same resource is in progress; it is retried after a delay";
    "OperationConflict" => Retry, "another operation on the same resource is in progress; it is retried after a delay";
    "InvalidOperation.Conflict" => Retry, "another operation on the same resource is in progress; it is retried after a delay";

    // --- the ENI or the instance is between states ---------------------------
    "InvalidOperation.InvalidEniState" => WaitForState, "the ENI is not in a state that allows this operation (Attach needs Available, Detach needs InUse); wait for its current operation to finish";
    "InvalidOperation.InvalidEcsState" => WaitForState, "the instance must be Running or Stopped for this operation; wait until it is, or start it";
    "IncorrectInstanceStatus" => WaitForState, "the instance is starting, stopping or otherwise changing state; wait until it is Running or Stopped";

    // --- signing and credentials ---------------------------------------------
    "SignatureDoesNotMatch" => Permanent, "the request signature was rejected: the AccessKeySecret does not belong to the AccessKeyId, or a proxy altered the request. Check the credentials eni-agent uses";
    "IncompleteSignature" => Permanent, "the request signature is incomplete; check that no proxy strips headers or query parameters";
    "InvalidAccessKeyId.NotFound" => Permanent, "the AccessKeyId does not exist; check the credentials (environment, credentials file or instance RAM role)";
    "InvalidAccessKeyId.Inactive" => Permanent, "the AccessKey is disabled; enable it in the RAM console or use another one";
    "InvalidTimeStamp.Expired" => Permanent, "the request timestamp is more than 15 minutes off; fix the instance clock (chrony/NTP)";
    "SignatureNonceUsed" => Permanent, "the signature nonce was reused; this points to a clock or replay problem — fix the instance clock and retry";
    "InvalidSecurityToken.Expired" => Permanent, "the STS security token has expired; refresh the credentials (the RAM role is refreshed automatically — check the metadata service)";
    "InvalidSecurityToken.Malformed" => Permanent, "the STS security token is malformed; check ALIBABA_CLOUD_SECURITY_TOKEN or the credentials file";
    "InvalidSecurityToken.MismatchWithAccessKey" => Permanent, "the STS security token does not belong to this AccessKeyId; use the token issued with it";
    "Abs.InvalidAccount.NotFound" => Permanent, "the Alibaba Cloud account does not exist or the AccessKey pair has expired; use valid credentials";
    "InvalidUserType.NotSupported" => Permanent, "this account type cannot perform the operation; use an account that can (for example a non-restricted Alibaba Cloud account)";

    // --- permissions ----------------------------------------------------------
    "Forbidden.RAM" => Permanent, "the RAM policy of the credentials lacks a permission: grant ecs:AttachNetworkInterface, ecs:DetachNetworkInterface, ecs:DescribeNetworkInterfaceAttribute and ecs:DescribeNetworkInterfaces to the instance RAM role or user";
    "Forbidden.SubUser" => Permanent, "the RAM policy lacks a permission on this resource: grant ecs:AttachNetworkInterface (and ecs:DetachNetworkInterface, ecs:DescribeNetworkInterfaceAttribute, ecs:DescribeNetworkInterfaces) to the instance RAM role or user";
    "Forbidden.NotSupportRAM" => Permanent, "RAM users may not perform this operation on this resource: grant ecs:AttachNetworkInterface to the role, or use the account owner's credentials";
    "Forbidden" => Permanent, "the credentials are not allowed to perform this operation; check the RAM policy (ecs:AttachNetworkInterface, ecs:DescribeNetworkInterfaceAttribute, ...)";

    // --- request shape and region ---------------------------------------------
    "MissingParameter" => Permanent, "a required parameter is missing; this is a bug in eni-agent — report it with the RequestId";
    "UnsupportedParameter" => Permanent, "a parameter is not supported by this region's API; report it with the RequestId";
    "InvalidParameter" => Permanent, "a parameter value is invalid; check the ENI id, instance id and region in the configuration";
    "InvalidInstanceID.Malformed" => Permanent, "the instance id is malformed; check instance_id in the configuration or the metadata service's instance-id";
    "InvalidParams.EniId" => Permanent, "the ENI id is malformed; ENI ids look like eni-xxxxxxxx — fix it in the configuration or command line";
    "InvalidOperation.InvalidRegion" => Permanent, "the region is invalid for this operation; check region in the configuration and the API endpoint";
    "Forbidden.RegionId" => Permanent, "the service is not available in this region; check region in the configuration";
    "InvalidRegionId.MalFormed" => Permanent, "the region id is malformed; it looks like cn-hangzhou — fix region in the configuration";
    "InvalidAction.NotFound" => Permanent, "the endpoint does not know this API action; check that the endpoint is an ECS endpoint (ecs-vpc.<region>.aliyuncs.com)";
    "IdempotentParameterMismatch" => Permanent, "a ClientToken was reused with different parameters; retry the operation afresh";

    // --- resources that do not exist -----------------------------------------
    "InvalidEniId.NotFound" => Permanent, "the ENI does not exist in this region; check the ENI id and the region";
    "InvalidEcsId.NotFound" => Permanent, "the instance does not exist; check instance_id and the region";
    "InvalidInstanceId.NotFound" => Permanent, "the instance does not exist; check instance_id and the region";
    "InvalidVSwitchId.NotFound" => Permanent, "the ENI's vSwitch does not exist any more; recreate the ENI in an existing vSwitch";
    "InvalidSecurityGroupId.NotFound" => Permanent, "the ENI's security group does not exist; attach the ENI to an existing security group";

    // --- placement ------------------------------------------------------------
    "InvalidOperation.AvailabilityZoneMismatch" => Permanent, "the ENI is in a different zone than the instance; use an ENI created in a vSwitch of the instance's zone";
    "InvalidOperation.VpcMismatch" => Permanent, "the ENI is in a different VPC than the instance; use an ENI of the instance's VPC";
    "InvalidEni.NotSameVpc" => Permanent, "the ENI and the instance are not in the same VPC; use an ENI of the instance's VPC";
    "InvalidSecurityGroupId.NotVpc" => Permanent, "the ENI's security group is not a VPC security group; use a VPC security group";
    "InvalidOperation.MultiGroupType" => Permanent, "the instance cannot join security groups of different types; give the ENI a security group of the same type as the instance's";
    "InvalidOperation.NotSupportEnterpriseGroup" => Permanent, "this instance type does not support enterprise security groups; give the ENI a basic security group";
    "InvalidOperation.EniCountExceeded" => Permanent, "the enterprise security group holds its maximum number of NICs; use another security group";

    // --- limits and instance type ---------------------------------------------
    "EniPerInstanceLimitExceeded" => Permanent, "the instance type's ENI limit is reached; detach an ENI from this instance or move to a larger instance type";
    "MaxEniCountExceeded" => Permanent, "the account's ENI quota is reached; delete unused ENIs or request a higher quota";
    "InvalidOperation.Ipv4CountExceeded" => Permanent, "the maximum number of IPv4 addresses for this instance type is reached; unassign addresses or use a larger instance type";
    "InvalidOperation.Ipv6CountExceeded" => Permanent, "the maximum number of IPv6 addresses for this instance type is reached; unassign addresses or use a larger instance type";
    "InvalidOperation.ExceedInstanceTypeQueueNumber" => Permanent, "the queues of all ENIs would exceed the instance type's total; lower the ENI's QueueNumber (ModifyNetworkInterfaceAttribute) or use a larger instance type";
    "InvalidOperation.HotPlugNotSupport" => Permanent, "this instance type attaches ENIs only while the instance is Stopped; stop the instance, attach, then start it";
    "InvalidOperation.UserNotSupportNetworkCard" => Permanent, "the account cannot choose a network card; remove network_card_index from the configuration";
    "InvalidParameter.NetworkCardIndexInvalid" => Permanent, "network_card_index is invalid for this instance type; remove it or use an index the instance family supports";
    "InvalidOperation.InstanceTypeNotSupportRss" => Permanent, "this instance type does not support RSS for ENIs; use an ENI without RSS or another instance type";
    "InvalidOperation.InstanceTypeNotSupportHighPerformanceTrafficMode" => Permanent, "this instance type does not support RDMA (HighPerformance) ENIs; use a Standard ENI or an RDMA-capable instance type";
    "InvalidOperation.ConnectionTrackingConfigNotSupportMemberEni" => Permanent, "member ENIs cannot carry a connection tracking configuration; remove it from the ENI";

    // --- ENI kind -------------------------------------------------------------
    "InvalidOperation.EniServiceManaged" => Permanent, "the ENI is managed by another Alibaba Cloud service and cannot be attached by hand; use an ENI you created";
    "InvalidOperation.TrunkingIsNotAllowed" => Permanent, "the trunk ENI cannot be used for this operation; use a Secondary ENI";
    "InvalidOperation.EniTypeNotSupportTrunking" => Permanent, "the ENI type does not support trunking; use a Secondary ENI";
    "InvalidParameter.EniNotBelongTrunk" => Permanent, "the ENI is not in trunk mode; eni-agent attaches plain Secondary ENIs only";
};

/// The row for `code`, if the table has one.
pub fn lookup(code: &str) -> Option<&'static CodeInfo> {
    CODES.iter().find(|c| c.code == code)
}

/// The class of `code` returned with HTTP `status`. Codes outside the table
/// are classified by shape: any `Throttling*` code and any 5xx status are
/// transient; everything else is permanent.
pub fn classify(code: &str, status: u16) -> ErrorClass {
    match lookup(code) {
        Some(info) => info.class,
        None if code.starts_with("Throttling") || status >= 500 => Retry,
        None => Permanent,
    }
}

/// The remedy for `code`, or a generic one naming the code.
pub fn remedy(code: &str) -> &'static str {
    lookup(code).map_or(
        "see https://api.aliyun.com/troubleshoot for this code, with the RequestId",
        |c| c.remedy,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the `HTTP status + code` rows of an API reference error table.
    /// The two pages lay rows out differently (`400MissingParameter%s…` and
    /// `400 MissingParameter %s …`), so each row is returned as the text after
    /// the status, and the caller matches codes as prefixes.
    fn error_rows(doc: &str) -> Vec<String> {
        let start = doc
            .find("Error codes")
            .expect("document has an error code section");
        doc[start..]
            .lines()
            .map(str::trim)
            .filter(|l| l.len() > 3 && l.as_bytes()[..3].iter().all(u8::is_ascii_digit))
            .filter(|l| matches!(&l[..1], "4" | "5"))
            .map(|l| l[3..].trim_start().to_owned())
            .collect()
    }

    /// The longest table code the row starts with, where the code is not cut
    /// off in the middle of a longer dotted code (`InvalidParameter` must not
    /// stand in for `InvalidParameter.NetworkCardIndexInvalid`).
    fn classified_code(row: &str) -> Option<&'static str> {
        CODES
            .iter()
            .map(|c| c.code)
            .filter(|code| {
                row.strip_prefix(code).is_some_and(|rest| {
                    let mut chars = rest.chars();
                    match chars.next() {
                        None | Some('%' | ' ' | '\t') => true,
                        // A message that starts right after the code
                        // ("...NetworkCardUser not support"): its first word
                        // is a plain capitalised word, not the rest of a code.
                        Some(c) if c.is_ascii_uppercase() => {
                            rest.split_whitespace().next().is_some_and(|w| {
                                !w.contains('.')
                                    && w.chars().skip(1).all(|ch| !ch.is_ascii_uppercase())
                            })
                        }
                        _ => false,
                    }
                })
            })
            .max_by_key(|code| code.len())
    }

    /// Checks the error table `doc` of the API reference page `name`.
    fn check_document(name: &str, doc: &str, min_rows: usize) {
        let rows = error_rows(doc);
        assert!(
            rows.len() >= min_rows,
            "{name}: expected at least {min_rows} error rows, found {}",
            rows.len()
        );
        let unclassified: Vec<&String> = rows
            .iter()
            .filter(|r| classified_code(r).is_none())
            .collect();
        assert!(
            unclassified.is_empty(),
            "{name}: unclassified error codes in rows: {unclassified:#?}"
        );
    }

    #[test]
    fn every_attach_error_code_is_classified() {
        check_document(
            "AttachNetworkInterface",
            include_str!("testdata/AttachNetworkInterface.errors.txt"),
            40,
        );
    }

    #[test]
    fn every_describe_error_code_is_classified() {
        check_document(
            "DescribeNetworkInterfaceAttribute",
            include_str!("testdata/DescribeNetworkInterfaceAttribute.errors.txt"),
            12,
        );
    }

    #[test]
    fn gateway_codes_named_by_the_issue_are_classified() {
        for (code, class) in [
            ("Throttling", Retry),
            ("Throttling.User", Retry),
            ("Throttling.Api", Retry),
            ("ServiceUnavailable", Retry),
            ("InternalError", Retry),
            ("Operation.Conflict", Retry),
            ("InvalidOperation.InvalidEniState", WaitForState),
            ("IncorrectInstanceStatus", WaitForState),
            ("SignatureDoesNotMatch", Permanent),
            ("InvalidAccessKeyId.NotFound", Permanent),
            ("InvalidTimeStamp.Expired", Permanent),
            ("SignatureNonceUsed", Permanent),
        ] {
            assert_eq!(lookup(code).map(|c| c.class), Some(class), "{code}");
        }
    }

    #[test]
    fn the_matcher_rejects_a_missing_dotted_code() {
        assert_eq!(classified_code("InvalidParameter.SomethingNew%s"), None);
        assert_eq!(
            classified_code("InvalidParameter%s"),
            Some("InvalidParameter")
        );
        assert_eq!(
            classified_code(
                "InvalidOperation.UserNotSupportNetworkCardUser not support network card.-"
            ),
            Some("InvalidOperation.UserNotSupportNetworkCard")
        );
        assert_eq!(classified_code("NoSuchCode%s"), None);
    }

    #[test]
    fn codes_are_unique_and_permanent_ones_have_remedies() {
        for (i, a) in CODES.iter().enumerate() {
            assert!(
                CODES[i + 1..].iter().all(|b| b.code != a.code),
                "duplicate {}",
                a.code
            );
            assert!(
                a.remedy.len() > 20,
                "{} needs a remedy a person can act on",
                a.code
            );
        }
    }

    #[test]
    fn unknown_codes_are_classified_by_shape() {
        assert_eq!(classify("Throttling.Something", 400), Retry);
        assert_eq!(classify("Weird", 502), Retry);
        assert_eq!(classify("Weird", 403), Permanent);
    }
}
