//! Signature V2, the legacy RPC `HMAC-SHA1` algorithm: every parameter except
//! `Signature` is signed, and the key is the AccessKeySecret followed by `&`;
//! the string to sign is `<METHOD>&%2F&` and the percent-encoded canonical query.

use base64::Engine;
use ring::hmac;

use super::encode::{canonical_query, percent_encode};

/// `SignatureMethod` value of this algorithm.
pub const SIGNATURE_METHOD: &str = "HMAC-SHA1";
/// `SignatureVersion` value of this algorithm.
pub const SIGNATURE_VERSION: &str = "1.0";

/// `METHOD&%2F&<percent-encoded canonical query>`.
pub fn string_to_sign<'a, I>(method: &str, params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let query = canonical_query(params.into_iter().filter(|(k, _)| *k != "Signature"));
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&query)
    )
}

/// Base64 of HMAC-SHA1 over `string_to_sign` keyed with `secret&`.
pub fn signature(string_to_sign: &str, access_key_secret: &str) -> String {
    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{access_key_secret}&").as_bytes(),
    );
    let tag = hmac::sign(&key, string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(method: &str, params: &[(&str, &str)], secret: &str) -> (String, String) {
        let sts = string_to_sign(method, params.iter().copied());
        let sig = signature(&sts, secret);
        (sts, sig)
    }

    /// ECS DescribeRegions, the official documentation example (§2.2.1).
    #[test]
    fn official_describe_regions_example() {
        let params = [
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ];
        let (sts, sig) = sign("GET", &params, "testsecret");
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26\
             SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26\
             SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(sig, "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    }

    /// The official SMS example with a UTF-8 parameter value (§2.2.2).
    #[test]
    fn official_sms_example_with_utf8_value() {
        let params = [
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ];
        let (_, sig) = sign("GET", &params, "testSecret");
        assert_eq!(sig, "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
    }

    fn sdk_go_params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AccessKeyId", "accessKeyId"),
            ("Action", ""),
            ("Format", "JSON"),
            ("RegionId", "regionId"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "MOCK_UUID"),
            ("SignatureType", ""),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "mock date"),
            ("Version", ""),
        ]
    }

    /// alibaba-cloud-sdk-go `rpc_signature_composer_test.go`, access key case (§2.2.4).
    #[test]
    fn sdk_go_access_key_vector() {
        let (sts, sig) = sign("GET", &sdk_go_params(), "accessKeySecret");
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3DaccessKeyId%26Action%3D%26Format%3DJSON%26RegionId%3DregionId%26\
             SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3DMOCK_UUID%26SignatureType%3D%26\
             SignatureVersion%3D1.0%26Timestamp%3Dmock%2520date%26Version%3D"
        );
        assert_eq!(sig, "7loPmFjvDnzOVnQeQNj85S6nFGY=");
    }

    /// The same with an STS token: `SecurityToken` is signed like any parameter.
    #[test]
    fn sdk_go_sts_vector_signs_security_token() {
        let mut params = sdk_go_params();
        params.push(("SecurityToken", "accessKeyStsToken"));
        let (_, sig) = sign("GET", &params, "accessKeySecret");
        assert_eq!(sig, "5Nxdcler+ihqWqv0Hr2On4PsBf4=");
    }

    #[test]
    fn signature_parameter_itself_is_not_signed() {
        let with = sign("GET", &[("a", "1"), ("Signature", "x")], "s");
        let without = sign("GET", &[("a", "1")], "s");
        assert_eq!(with, without);
    }

    /// darabonba-openapi-util vectors (§2.2.3).
    #[test]
    fn darabonba_util_vectors() {
        assert_eq!(
            sign("", &[("test", "ok")], "accessKeySecret").1,
            "jHx/oHoHNrbVfhncHEvPdHXZwHU="
        );
        assert_eq!(
            sign("GET", &[("query", "test"), ("body", "test")], "secret").1,
            "XlUyV4sXjOuX5FnjUz9IF9tm5rU="
        );
    }
}
