//! Authenticating a webhook call, as Flux's notification-controller does for each type, with
//! constant-time comparisons.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use subtle::ConstantTimeEq as _;

use ferry_proto::ReceiverType;

/// Why a call is not authentic (answered 401; the message is logged and returned).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header carrying the signature or token is absent.
    #[error("header {0} is missing")]
    Missing(&'static str),
    /// The signature header is not `<algorithm>=<hex>` with a supported algorithm.
    #[error("header {header} is not <sha1|sha256|sha512>=<hex>")]
    Malformed {
        /// The header.
        header: &'static str,
    },
    /// The signature or token does not match the receiver's token.
    #[error("header {0} does not match the receiver's token")]
    Mismatch(&'static str),
}

/// Checks `headers` and `body` against `token` for a receiver of type `ty`.
pub fn verify(
    ty: ReceiverType,
    token: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), VerifyError> {
    match ty {
        ReceiverType::Generic => Ok(()),
        ReceiverType::GenericHmac => signature(headers, "x-signature", token, body),
        ReceiverType::Github => {
            // GitHub sends both; the sha256 one wins when present (as go-github decides).
            if headers.contains_key("x-hub-signature-256") {
                signature(headers, "x-hub-signature-256", token, body)
            } else if headers.contains_key("x-hub-signature") {
                signature(headers, "x-hub-signature", token, body)
            } else {
                Err(VerifyError::Missing("X-Hub-Signature-256"))
            }
        }
        ReceiverType::Gitlab => {
            let header = "x-gitlab-token";
            let given = headers
                .get(header)
                .ok_or(VerifyError::Missing("X-Gitlab-Token"))?;
            if bool::from(given.as_bytes().ct_eq(token)) {
                Ok(())
            } else {
                Err(VerifyError::Mismatch("X-Gitlab-Token"))
            }
        }
    }
}

/// `<algorithm>=<hex HMAC of body keyed with token>` in `header`.
fn signature(
    headers: &HeaderMap,
    header: &'static str,
    token: &[u8],
    body: &[u8],
) -> Result<(), VerifyError> {
    let value = headers
        .get(header)
        .ok_or(VerifyError::Missing(header))?
        .to_str()
        .map_err(|_| VerifyError::Malformed { header })?;
    let (algorithm, hex_mac) = value
        .trim()
        .split_once('=')
        .ok_or(VerifyError::Malformed { header })?;
    let mac = hex::decode(hex_mac).map_err(|_| VerifyError::Malformed { header })?;
    let ok = match algorithm {
        "sha1" => check::<Hmac<sha1::Sha1>>(token, body, &mac),
        "sha256" => check::<Hmac<sha2::Sha256>>(token, body, &mac),
        "sha512" => check::<Hmac<sha2::Sha512>>(token, body, &mac),
        _ => return Err(VerifyError::Malformed { header }),
    };
    if ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch(header))
    }
}

fn check<M: Mac + KeyInit>(token: &[u8], body: &[u8], mac: &[u8]) -> bool {
    let Ok(mut m) = <M as KeyInit>::new_from_slice(token) else {
        return false;
    };
    m.update(body);
    // Constant time.
    m.verify_slice(mac).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    fn sign<M: Mac + KeyInit>(token: &[u8], body: &[u8]) -> String {
        let mut m = <M as KeyInit>::new_from_slice(token).expect("any key length");
        m.update(body);
        hex::encode(m.finalize().into_bytes())
    }

    #[test]
    fn generic_hmac_accepts_each_algorithm_and_refuses_a_wrong_mac() {
        let (t, b) = (b"s3cret".as_slice(), b"{\"a\":1}".as_slice());
        for sig in [
            format!("sha1={}", sign::<Hmac<sha1::Sha1>>(t, b)),
            format!("sha256={}", sign::<Hmac<sha2::Sha256>>(t, b)),
            format!("sha512={}", sign::<Hmac<sha2::Sha512>>(t, b)),
        ] {
            let h = headers(&[("x-signature", &sig)]);
            assert_eq!(verify(ReceiverType::GenericHmac, t, &h, b), Ok(()), "{sig}");
            let h = headers(&[("x-signature", &sig)]);
            assert_eq!(
                verify(ReceiverType::GenericHmac, b"other", &h, b),
                Err(VerifyError::Mismatch("x-signature"))
            );
        }
        for bad in ["sha256", "md5=00", "sha256=zz"] {
            let h = headers(&[("x-signature", bad)]);
            assert!(matches!(
                verify(ReceiverType::GenericHmac, t, &h, b),
                Err(VerifyError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn github_prefers_sha256_and_falls_back_to_sha1() {
        let (t, b) = (b"tok".as_slice(), b"body".as_slice());
        let good1 = format!("sha1={}", sign::<Hmac<sha1::Sha1>>(t, b));
        let good256 = format!("sha256={}", sign::<Hmac<sha2::Sha256>>(t, b));
        let h = headers(&[("x-hub-signature", &good1)]);
        assert_eq!(verify(ReceiverType::Github, t, &h, b), Ok(()));
        // A wrong sha256 signature is not rescued by a right sha1 one.
        let h = headers(&[
            ("x-hub-signature", &good1),
            ("x-hub-signature-256", "sha256=00"),
        ]);
        assert!(verify(ReceiverType::Github, t, &h, b).is_err());
        let h = headers(&[("x-hub-signature-256", &good256)]);
        assert_eq!(verify(ReceiverType::Github, t, &h, b), Ok(()));
        assert!(verify(ReceiverType::Github, t, &HeaderMap::new(), b).is_err());
    }

    #[test]
    fn gitlab_compares_the_token() {
        let h = headers(&[("x-gitlab-token", "tok")]);
        assert_eq!(verify(ReceiverType::Gitlab, b"tok", &h, b""), Ok(()));
        assert!(verify(ReceiverType::Gitlab, b"tok2", &h, b"").is_err());
        assert!(verify(ReceiverType::Gitlab, b"to", &h, b"").is_err());
    }
}
