//! The S3 flexible checksums (`x-amz-checksum-*`, in headers or aws-chunked trailers) as a
//! [`FinalCheck`]: computed while the body is sealed, compared before its final chunk.

use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm};

use crate::codec::FinalCheck;
use crate::error::{Error, Result};

/// The checksums one PutObject/UploadPart declared.
pub(crate) struct S3Checks {
    hasher: ChecksumHasher,
    expected: Checksum,
    trailers: Option<s3s::TrailingHeaders>,
}

impl S3Checks {
    /// Hashes whatever the request declared: values in headers, an algorithm whose value
    /// comes in a trailer. `None` when it declared nothing.
    pub(crate) fn new(
        expected: Checksum,
        algorithm: Option<&ChecksumAlgorithm>,
        trailers: Option<s3s::TrailingHeaders>,
    ) -> Result<Option<Self>> {
        let mut hasher = ChecksumHasher::default();
        let mut any = false;
        let mut enable = |name: &str| -> Result<()> {
            any = true;
            match name {
                ChecksumAlgorithm::CRC32 => hasher.crc32 = Some(Default::default()),
                ChecksumAlgorithm::CRC32C => hasher.crc32c = Some(Default::default()),
                ChecksumAlgorithm::SHA1 => hasher.sha1 = Some(Default::default()),
                ChecksumAlgorithm::SHA256 => hasher.sha256 = Some(Default::default()),
                ChecksumAlgorithm::CRC64NVME => hasher.crc64nvme = Some(Default::default()),
                other => {
                    return Err(Error::NotImplemented(format!("checksum algorithm {other}")));
                }
            }
            Ok(())
        };
        if expected.checksum_crc32.is_some() {
            enable(ChecksumAlgorithm::CRC32)?;
        }
        if expected.checksum_crc32c.is_some() {
            enable(ChecksumAlgorithm::CRC32C)?;
        }
        if expected.checksum_sha1.is_some() {
            enable(ChecksumAlgorithm::SHA1)?;
        }
        if expected.checksum_sha256.is_some() {
            enable(ChecksumAlgorithm::SHA256)?;
        }
        if expected.checksum_crc64nvme.is_some() {
            enable(ChecksumAlgorithm::CRC64NVME)?;
        }
        if let Some(a) = algorithm {
            enable(a.as_str())?;
        }
        Ok(any.then_some(Self {
            hasher,
            expected,
            trailers,
        }))
    }
}

fn header_value(h: &http::HeaderMap, name: &str) -> Result<Option<String>> {
    h.get(name)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| Error::BadRequest(format!("trailer {name} is not text")))
        })
        .transpose()
}

impl FinalCheck for S3Checks {
    fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    fn verify(self: Box<Self>) -> Result<()> {
        let Self {
            hasher,
            mut expected,
            trailers,
        } = *self;
        if let Some(t) = trailers.and_then(|t| t.take()) {
            let set = |slot: &mut Option<String>, name: &str| -> Result<()> {
                if let Some(v) = header_value(&t, name)? {
                    *slot = Some(v);
                }
                Ok(())
            };
            set(&mut expected.checksum_crc32, "x-amz-checksum-crc32")?;
            set(&mut expected.checksum_crc32c, "x-amz-checksum-crc32c")?;
            set(&mut expected.checksum_sha1, "x-amz-checksum-sha1")?;
            set(&mut expected.checksum_sha256, "x-amz-checksum-sha256")?;
            set(&mut expected.checksum_crc64nvme, "x-amz-checksum-crc64nvme")?;
        }
        let got = hasher.finalize();
        let pairs = [
            ("CRC32", &expected.checksum_crc32, &got.checksum_crc32),
            ("CRC32C", &expected.checksum_crc32c, &got.checksum_crc32c),
            ("SHA1", &expected.checksum_sha1, &got.checksum_sha1),
            ("SHA256", &expected.checksum_sha256, &got.checksum_sha256),
            (
                "CRC64NVME",
                &expected.checksum_crc64nvme,
                &got.checksum_crc64nvme,
            ),
        ];
        for (name, want, have) in pairs {
            if let Some(w) = want
                && Some(w) != have.as_ref()
            {
                return Err(Error::BadDigest(name));
            }
        }
        Ok(())
    }
}
