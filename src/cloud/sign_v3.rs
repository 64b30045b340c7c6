//! Signature V3, `ACS3-HMAC-SHA256`: a canonical request over the method, the
//! path, the sorted query, the signed headers and the payload hash, hashed into
//! a string-to-sign and signed with HMAC-SHA256 keyed by the raw
//! AccessKeySecret, sent as `Authorization: ACS3-HMAC-SHA256
//! Credential=<AccessKeyId>,SignedHeaders=<names>,Signature=<hex>`.

use ring::{digest, hmac};

use super::encode::{canonical_query, hex_lower};

/// The algorithm name, first word of the `Authorization` header.
pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Lower-case hex SHA-256 of `payload` (`x-acs-content-sha256`).
pub fn hashed_payload(payload: &[u8]) -> String {
    hex_lower(digest::digest(&digest::SHA256, payload).as_ref())
}

/// The parts of a request that V3 signs.
#[derive(Debug, Clone)]
pub struct CanonicalInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// The headers to sign, any case; duplicates are merged.
    pub headers: &'a [(String, String)],
    pub hashed_payload: &'a str,
}

/// The canonical request and the `SignedHeaders` list.
pub fn canonical_request(input: &CanonicalInput<'_>) -> (String, String) {
    let query = canonical_query(input.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.sort();
    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in headers {
        match merged.last_mut() {
            Some((last, values)) if *last == name => values.push(value),
            _ => merged.push((name, vec![value])),
        }
    }
    let mut canonical_headers = String::new();
    for (name, values) in &merged {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let signed_headers = merged
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method, input.path, query, canonical_headers, signed_headers, input.hashed_payload
    );
    (request, signed_headers)
}

/// `ACS3-HMAC-SHA256\n<hex sha256 of the canonical request>`.
pub fn string_to_sign(canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}",
        hashed_payload(canonical_request.as_bytes())
    )
}

/// Lower-case hex HMAC-SHA256 of `string_to_sign`.
pub fn signature(string_to_sign: &str, access_key_secret: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, access_key_secret.as_bytes());
    hex_lower(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

/// The `Authorization` header value.
pub fn authorization(access_key_id: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The official fixed-value example of the V3 documentation (§2.3.1).
    #[test]
    fn official_run_instances_example() {
        let empty = hashed_payload(b"");
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let query = pairs(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ]);
        let headers = pairs(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-content-sha256", &empty),
        ]);
        let (creq, signed) = canonical_request(&CanonicalInput {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            hashed_payload: &empty,
        });
        assert_eq!(
            creq,
            "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
             host:ecs.cn-shanghai.aliyuncs.com\n\
             x-acs-action:RunInstances\n\
             x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-acs-date:2023-10-26T10:22:32Z\n\
             x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
             x-acs-version:2014-05-26\n\n\
             host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let sts = string_to_sign(&creq);
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let sig = signature(&sts, "YourAccessKeySecret");
        assert_eq!(
            sig,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            authorization("YourAccessKeyId", &signed, &sig),
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    /// darabonba-openapi-util's Python test: GET, an empty query value and a
    /// header given twice in different case (§2.3.2).
    #[test]
    fn darabonba_get_case_with_duplicate_header() {
        let payload = "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23";
        let query = pairs(&[("test", "ok"), ("empty", "")]);
        let headers = pairs(&[("x-acs-test", "http"), ("x-acs-TEST", "https")]);
        let (creq, signed) = canonical_request(&CanonicalInput {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            hashed_payload: payload,
        });
        assert_eq!(
            creq,
            format!("GET\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n{payload}")
        );
        let sig = signature(&string_to_sign(&creq), "secret");
        assert_eq!(
            authorization("acesskey", &signed, &sig),
            "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,\
             Signature=d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
        );
    }
}
