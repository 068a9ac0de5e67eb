//! The weights file: a small versioned header, a checksum and a Burn record of 8-bit, f16 or f32
//! tensors.
//!
//! Layout, all integers little-endian:
//!
//! | bytes            | content                                               |
//! | ---------------- | ----------------------------------------------------- |
//! | 0..8             | magic `MNISTGEN`                                      |
//! | 8..12            | format version ([`FORMAT_VERSION`])                   |
//! | 12..16           | header length `h` in bytes, at most [`MAX_HEADER_LEN`] |
//! | 16..16+h         | [`WeightsHeader`] as UTF-8 JSON                       |
//! | 16+h..           | payload: the module's record, `into_record().into_bytes()` |
//!
//! The header names the model kind and its architecture config, so a loader builds the right
//! module before it reads a tensor, and the SHA-256 of the payload catches corruption. Loading a
//! file of another kind, version or shape is an error, never a panic.
//!
//! With [`StorageType::Int8`] (version 2) the record is rewritten before it is stored. Every
//! tensor of two or more dimensions becomes an `i8` tensor of the same name, and an `f32` tensor
//! named with [`SCALE_SUFFIX`] contains its scales (see [`crate::quantize`]). The other tensors
//! become f16. Loading turns the payload back into an f32 record before Burn applies it.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::{Bytes, DType, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::quantize;

/// First bytes of every weights file.
pub const MAGIC: &[u8; 8] = b"MNISTGEN";

/// Version of the layout this code writes. Version 2 added [`StorageType::Int8`].
pub const FORMAT_VERSION: u32 = 2;

/// Oldest version this code still reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// Appended to an 8-bit tensor's name to name the tensor of its scales.
pub const SCALE_SUFFIX: &str = ":scale";

/// Largest accepted JSON header, in bytes.
pub const MAX_HEADER_LEN: u32 = 64 * 1024;

const PREFIX_LEN: usize = 16;

/// Largest accepted channel count or vector size in a config read from a file, so a crafted
/// header cannot make the loader allocate a huge module. The bundled models use at most 256.
// NOTE: this bounds each size, not their product. A VAE header with 1024 channels and latent
// size requests layers of about 200 MB, which the loader may allocate before the shape check.
pub const MAX_CONFIG_DIM: usize = 1024;

/// The kind of model a weights file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// DCGAN generator.
    Dcgan,
    /// Conditional GAN generator.
    Cgan,
    /// Autoencoder.
    Autoencoder,
    /// Variational autoencoder.
    Vae,
    /// Digit classifier.
    Classifier,
}

impl ModelKind {
    /// Lowercase name, as used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Dcgan => "dcgan",
            ModelKind::Cgan => "cgan",
            ModelKind::Autoencoder => "autoencoder",
            ModelKind::Vae => "vae",
            ModelKind::Classifier => "classifier",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Element type of the stored tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// 8-bit integers with one f32 scale per channel for tensors of two or more dimensions, f16
    /// for the others. Half the bytes of f16; the bundled models' metrics do not change
    /// measurably (BENCHMARKS.md).
    #[default]
    Int8,
    /// IEEE half precision.
    F16,
    /// IEEE single precision.
    F32,
}

impl StorageType {
    /// Lowercase name, as used on the command line and in the header.
    pub fn name(self) -> &'static str {
        match self {
            StorageType::Int8 => "int8",
            StorageType::F16 => "f16",
            StorageType::F32 => "f32",
        }
    }

    /// Returns the float type the module is cast to before its record is taken.
    fn record_dtype(self) -> DType {
        match self {
            StorageType::F16 => DType::F16,
            StorageType::Int8 | StorageType::F32 => DType::F32,
        }
    }
}

impl std::fmt::Display for StorageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The JSON header of a weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsHeader {
    /// The model kind.
    pub kind: ModelKind,
    /// The architecture config, as the model's `Config` serializes it.
    pub config: serde_json::Value,
    /// Element type of the stored tensors.
    pub storage: StorageType,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// SHA-256 of the payload, lowercase hex.
    pub payload_sha256: String,
}

/// Error from writing or reading a weights file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file is shorter than its fixed prefix or than its header states.
    #[error("the weights file is truncated: {0}; download or export it again")]
    Truncated(String),
    /// The file does not start with the magic bytes.
    #[error("not a weights file: it does not start with \"MNISTGEN\"; check the path, or export the model again with `trainer train`")]
    Magic,
    /// The file has a format version this code does not read.
    #[error("weights format version {found} is not supported (this build reads versions {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}); use a matching trainer and page")]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// The header is larger than [`MAX_HEADER_LEN`].
    #[error("the weights header claims {0} bytes, more than the {MAX_HEADER_LEN}-byte maximum; the file is corrupt, download or export it again")]
    HeaderTooLarge(u32),
    /// The header is not the expected JSON.
    #[error("invalid weights header: {0}; the file is corrupt or from another version, export the model again")]
    Header(String),
    /// The file contains another kind of model.
    #[error("the weights file contains a model of kind {found}, expected {expected}; pass a {expected} weights file")]
    Kind {
        /// Kind in the file.
        found: ModelKind,
        /// Kind the caller asked for.
        expected: ModelKind,
    },
    /// The payload length disagrees with the header.
    #[error("the payload is {found} bytes but the header says {expected}; the file is truncated or corrupt, download or export it again")]
    PayloadLength {
        /// Length from the header.
        expected: u64,
        /// Actual length.
        found: u64,
    },
    /// The payload's SHA-256 differs from the header's.
    #[error("checksum mismatch: the payload's SHA-256 is {found}, the header says {expected}; the file is corrupt, download or export it again")]
    Checksum {
        /// Digest from the header.
        expected: String,
        /// Digest of the payload.
        found: String,
    },
    /// The architecture config is invalid.
    #[error("invalid model config in the weights header: {0}; export the model again")]
    Config(String),
    /// The payload's tensors cannot be decoded: a malformed container, an unknown element type,
    /// an 8-bit tensor without scales, or byte counts that disagree with the shapes.
    #[error("the weights payload is malformed: {0}; export the model again")]
    Payload(String),
    /// The tensors do not fit the architecture (names or shapes differ) or cannot be decoded.
    #[error("the tensors do not match the {kind} architecture: {error}; export the model again with this trainer")]
    Record {
        /// Kind being loaded.
        kind: ModelKind,
        /// Burn's error, part of this message and so not a separate source.
        error: RecordError,
    },
    /// A weight is NaN or infinite.
    #[error("the weights contain NaN or infinite values ({0} of them), or values beyond the storage type's range; the training run diverged, so train again with a lower --learning-rate")]
    NonFinite(usize),
}

/// Serializes `module` into a weights file.
///
/// Float tensors are stored as `storage`. Fold BatchNorm first: its running variance loses
/// precision in f16.
pub fn encode<M: Module>(
    kind: ModelKind,
    config: serde_json::Value,
    module: M,
    storage: StorageType,
) -> Result<Vec<u8>, WeightsError> {
    let module = module.map(&mut CastFloats {
        dtype: storage.record_dtype(),
        next_id: 0,
    });
    // NaN from a diverged run, or values beyond the storage type's range, such as 65,504 in f16.
    let mut counter = NonFiniteCounter(0);
    module.visit(&mut counter);
    if counter.0 > 0 {
        return Err(WeightsError::NonFinite(counter.0));
    }
    let record = module
        .into_record()
        .into_bytes()
        .map_err(|error| WeightsError::Record { kind, error })?;
    let payload = match storage {
        StorageType::Int8 => quantize_record(record)?,
        StorageType::F16 | StorageType::F32 => record.to_vec(),
    };

    assemble(kind, config, storage, &payload)
}

/// Writes the prefix and a header for `payload`, its length and SHA-256 included, then the
/// payload itself.
pub fn assemble(
    kind: ModelKind,
    config: serde_json::Value,
    storage: StorageType,
    payload: &[u8],
) -> Result<Vec<u8>, WeightsError> {
    let header = WeightsHeader {
        kind,
        config,
        storage,
        payload_len: payload.len() as u64,
        payload_sha256: sha256_hex(payload),
    };
    let header = serde_json::to_vec(&header).map_err(|e| WeightsError::Header(e.to_string()))?;
    let header_len = u32::try_from(header.len())
        .ok()
        .filter(|&len| len <= MAX_HEADER_LEN)
        .ok_or(WeightsError::HeaderTooLarge(u32::MAX))?;

    let mut file = Vec::with_capacity(PREFIX_LEN + header.len() + payload.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&header_len.to_le_bytes());
    file.extend_from_slice(&header);
    file.extend_from_slice(payload);
    Ok(file)
}

/// Returns the format version of a file that starts with the magic bytes.
pub fn format_version(file: &[u8]) -> Option<u32> {
    let prefix = file.get(..12).filter(|prefix| &prefix[..8] == MAGIC)?;
    Some(u32::from_le_bytes(prefix[8..12].try_into().ok()?))
}

/// Reads and checks the header, and returns it with the payload it vouches for.
pub fn decode(file: &[u8]) -> Result<(WeightsHeader, &[u8]), WeightsError> {
    if file.len() < PREFIX_LEN {
        return Err(WeightsError::Truncated(format!(
            "{} bytes, shorter than the {PREFIX_LEN}-byte prefix",
            file.len()
        )));
    }
    if &file[0..8] != MAGIC {
        return Err(WeightsError::Magic);
    }
    let version = u32::from_le_bytes(file[8..12].try_into().unwrap());
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(WeightsError::Version { found: version });
    }
    let header_len = u32::from_le_bytes(file[12..16].try_into().unwrap());
    if header_len > MAX_HEADER_LEN {
        return Err(WeightsError::HeaderTooLarge(header_len));
    }

    let header_end = PREFIX_LEN + header_len as usize;
    let header_bytes = file.get(PREFIX_LEN..header_end).ok_or_else(|| {
        WeightsError::Truncated(format!(
            "the header needs {header_len} bytes but only {} follow the prefix",
            file.len() - PREFIX_LEN
        ))
    })?;
    let header: WeightsHeader =
        serde_json::from_slice(header_bytes).map_err(|e| WeightsError::Header(e.to_string()))?;
    if header.storage == StorageType::Int8 && version < 2 {
        return Err(WeightsError::Header(format!("int8 storage needs format version 2 or later, but the file is version {version}")));
    }

    let payload = &file[header_end..];
    if payload.len() as u64 != header.payload_len {
        return Err(WeightsError::PayloadLength {
            expected: header.payload_len,
            found: payload.len() as u64,
        });
    }
    let digest = sha256_hex(payload);
    if digest != header.payload_sha256 {
        return Err(WeightsError::Checksum {
            expected: header.payload_sha256,
            found: digest,
        });
    }
    Ok((header, payload))
}

/// Decodes a weights file of `expected` kind: checks it, parses its config and loads its tensors
/// into the module that `build` makes from that config on the CPU, then moves it to `device`.
///
/// Loading on the CPU first lets the finiteness check read the weights synchronously, which a
/// WebGPU device in a browser cannot.
pub fn load<C, M>(
    file: &[u8],
    expected: ModelKind,
    device: &Device,
    build: impl FnOnce(&C, &Device) -> Result<M, String>,
) -> Result<(C, M), WeightsError>
where
    C: serde::de::DeserializeOwned,
    M: Module,
{
    let (header, payload) = decode(file)?;
    if header.kind != expected {
        return Err(WeightsError::Kind {
            found: header.kind,
            expected,
        });
    }
    let config: C =
        serde_json::from_value(header.config).map_err(|e| WeightsError::Config(e.to_string()))?;

    let cpu = Device::flex();
    let module = build(&config, &cpu).map_err(WeightsError::Config)?;
    // The record contains f32 tensors, the modules' type, so it loads as it is. Casting to the
    // module's type would initialize every parameter first, and a crafted config with huge
    // layers would allocate gigabytes before the shape check rejects it.
    let record = ModuleRecord::from_bytes(float_record(payload, header.storage)?).map_err(|error| {
        WeightsError::Record {
            kind: expected,
            error,
        }
    })?;
    let module = module
        .try_load_record(record)
        .map_err(|error| WeightsError::Record {
            kind: expected,
            error,
        })?;

    let mut counter = NonFiniteCounter(0);
    module.visit(&mut counter);
    if counter.0 > 0 {
        return Err(WeightsError::NonFinite(counter.0));
    }
    Ok((config, module.to_device(device)))
}

/// Rewrites an f32 record with 8-bit tensors and scales for every tensor of two or more
/// dimensions and f16 for the rest.
/// The largest finite f16 value.
const F16_MAX: f32 = 65_504.0;

fn quantize_record(record: Bytes) -> Result<Vec<u8>, WeightsError> {
    let mut packed = Vec::new();
    let mut beyond_f16 = 0;
    for tensor in read_tensors(record)? {
        let dims = tensor.data.shape().to_vec();
        let values = tensor.data.try_into_vec::<f32>().map_err(payload_error)?;
        if dims.len() < 2 {
            // Also NaN, for which the comparison is false.
            beyond_f16 += values.iter().filter(|value| !(value.abs() <= F16_MAX)).count();
            let half = TensorData::new(values, dims.clone()).convert_dtype(DType::F16);
            packed.push(burn_pack::Tensor::new(tensor.name, DType::F16, dims, tensor.id, half.into_bytes()));
            continue;
        }

        let quantized = quantize::quantize(&values, &dims);
        let bytes: Vec<u8> = quantized.values.iter().map(|&q| q as u8).collect();
        let scales: Vec<u8> = quantized.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
        let scale_name = format!("{}{SCALE_SUFFIX}", tensor.name);
        packed.push(burn_pack::Tensor::new(tensor.name, DType::I8, dims, tensor.id, Bytes::from_bytes_vec(bytes)));
        packed.push(burn_pack::Tensor::new(scale_name, DType::F32, quantized.scale_dims, None, Bytes::from_bytes_vec(scales)));
    }
    if beyond_f16 > 0 {
        return Err(WeightsError::NonFinite(beyond_f16));
    }
    let bytes = burn_pack::Writer::new(packed).into_bytes().map_err(payload_error)?;
    Ok(bytes.to_vec())
}

/// Turns a stored payload into a record of f32 tensors, checking every tensor's element type
/// against `storage` and its byte count against its shape on the way.
fn float_record(payload: &[u8], storage: StorageType) -> Result<Bytes, WeightsError> {
    let mut values = BTreeMap::new();
    let mut scales = BTreeMap::new();
    for tensor in read_tensors(Bytes::from_bytes_vec(payload.to_vec()))? {
        match tensor.name.strip_suffix(SCALE_SUFFIX) {
            Some(owner) => scales.insert(owner.to_string(), tensor),
            None => values.insert(tensor.name.clone(), tensor),
        };
    }

    let mut floats = Vec::with_capacity(values.len());
    for (name, tensor) in values {
        let dtype = tensor.data.dtype();
        let allowed = match storage {
            StorageType::Int8 => matches!(dtype, DType::I8 | DType::F16),
            StorageType::F16 => dtype == DType::F16,
            StorageType::F32 => dtype == DType::F32,
        };
        if !allowed {
            return Err(WeightsError::Payload(format!("tensor {name} is {dtype:?}, but the header says {storage} storage")));
        }
        let dims = tensor.data.shape().to_vec();
        let restored = match tensor.data.dtype() {
            DType::F16 | DType::F32 => tensor.data.convert_dtype(DType::F32),
            DType::I8 => {
                let scale = scales
                    .remove(&name)
                    .ok_or_else(|| WeightsError::Payload(format!("8-bit tensor {name} has no scales")))?;
                if scale.data.dtype() != DType::F32 {
                    return Err(WeightsError::Payload(format!("the scales of {name} are {:?}, expected f32", scale.data.dtype())));
                }
                let scale_dims = scale.data.shape().to_vec();
                let scale_values = scale.data.try_into_vec::<f32>().map_err(payload_error)?;
                let stored = tensor.data.try_into_vec::<i8>().map_err(payload_error)?;
                let restored = quantize::dequantize(&stored, &dims, &scale_values, &scale_dims)
                    .map_err(|e| WeightsError::Payload(format!("tensor {name}: {e}")))?;
                TensorData::new(restored, dims.clone())
            }
            other => return Err(WeightsError::Payload(format!("tensor {name} is {other:?}, expected f16, f32 or i8"))),
        };
        floats.push(burn_pack::Tensor::new(name, DType::F32, dims, tensor.id, restored.into_bytes()));
    }
    if let Some(orphan) = scales.keys().next() {
        return Err(WeightsError::Payload(format!("scales for {orphan}, which is not an 8-bit tensor")));
    }
    burn_pack::Writer::new(floats).into_bytes().map_err(payload_error)
}

/// One tensor of a burnpack container, its bytes checked against its shape and element type.
struct StoredTensor {
    name: String,
    id: Option<u64>,
    data: TensorData,
}

fn read_tensors(bytes: Bytes) -> Result<Vec<StoredTensor>, WeightsError> {
    let tensors = burn_pack::Reader::from_bytes(bytes)
        .and_then(burn_pack::Reader::into_tensors)
        .map_err(payload_error)?;
    tensors
        .into_iter()
        .map(|tensor| {
            let (name, dtype, shape, id, bytes) = tensor.into_parts().map_err(payload_error)?;
            if matches!(dtype, DType::QFloat(_)) {
                return Err(WeightsError::Payload(format!("tensor {name} is {dtype:?}, expected f16, f32 or i8")));
            }
            let data = TensorData::try_from_bytes(bytes, shape, dtype)
                .map_err(|e| WeightsError::Payload(format!("tensor {name}: {e}")))?;
            Ok(StoredTensor { name, id, data })
        })
        .collect()
}

fn payload_error(error: impl std::fmt::Display) -> WeightsError {
    WeightsError::Payload(error.to_string())
}

/// Checks that every size in `dims` is between 1 and [`MAX_CONFIG_DIM`].
pub fn check_dims(what: &str, dims: &[usize]) -> Result<(), String> {
    match dims.iter().find(|&&d| d == 0 || d > MAX_CONFIG_DIM) {
        Some(bad) => Err(format!("{what} is {bad}, expected 1 to {MAX_CONFIG_DIM}")),
        None => Ok(()),
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Casts every float tensor to one type and numbers the parameters in visit order.
///
/// Burn draws parameter ids at random, and records store them, so without renumbering two
/// exports of equal weights would differ in bytes and in checksum.
struct CastFloats {
    dtype: DType,
    next_id: u64,
}

impl ModuleMapper for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, tensor, mapper) = param.consume();
        let id = ParamId::from(self.next_id);
        self.next_id += 1;
        Param::from_mapped_value(id, tensor.cast(self.dtype), mapper)
    }
}

struct NonFiniteCounter(usize);

impl ModuleVisitor for NonFiniteCounter {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        self.0 += data.iter::<f32>().filter(|v| !v.is_finite()).count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    fn linear_file() -> Vec<u8> {
        let linear = LinearConfig::new(3, 2).init(&Device::flex());
        let config = serde_json::json!({"d_input": 3, "d_output": 2});
        encode(ModelKind::Classifier, config, linear, StorageType::F16).unwrap()
    }

    fn load_linear(file: &[u8]) -> Result<Linear, WeightsError> {
        load(file, ModelKind::Classifier, &Device::flex(), |c: &serde_json::Value, device| {
            let d_input = c["d_input"].as_u64().ok_or("missing d_input")? as usize;
            Ok(LinearConfig::new(d_input, 2).init(device))
        })
        .map(|(_, module)| module)
    }

    #[test]
    fn file_round_trips() {
        let file = linear_file();
        let (header, _) = decode(&file).unwrap();
        assert_eq!(header.kind, ModelKind::Classifier);
        assert_eq!(header.storage, StorageType::F16);
        assert!(load_linear(&file).is_ok());
    }

    #[test]
    fn equal_weights_encode_to_equal_bytes() {
        let device = Device::flex();
        // Fixed values: the device's seed is shared with the tests that run alongside.
        let make = || {
            let mut linear = LinearConfig::new(3, 2).init(&device);
            linear.weight = linear.weight.map(|w| w.ones_like().mul_scalar(0.25));
            linear.bias = linear.bias.map(|b| b.map(|b| b.ones_like().mul_scalar(-0.5)));
            encode(ModelKind::Classifier, serde_json::json!({}), linear, StorageType::F16).unwrap()
        };
        assert_eq!(make(), make(), "parameter ids leaked into the file");
    }

    #[test]
    fn truncated_file_is_rejected() {
        let file = linear_file();
        for len in [0, 5, 15, 20, file.len() - 1] {
            let error = decode(&file[..len]).unwrap_err();
            assert!(
                matches!(error, WeightsError::Truncated(_) | WeightsError::PayloadLength { .. }),
                "length {len}: {error}"
            );
        }
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let mut file = linear_file();
        file[0] = b'X';
        assert!(matches!(decode(&file), Err(WeightsError::Magic)));
    }

    #[test]
    fn other_version_is_rejected() {
        let mut file = linear_file();
        file[8] = 9;
        assert!(matches!(decode(&file), Err(WeightsError::Version { found: 9 })));
    }

    #[test]
    fn oversized_header_is_rejected() {
        let mut file = linear_file();
        file[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&file), Err(WeightsError::HeaderTooLarge(u32::MAX))));
    }

    #[test]
    fn flipped_payload_byte_fails_checksum() {
        let mut file = linear_file();
        let last = file.len() - 1;
        file[last] ^= 0x40;
        let error = decode(&file).unwrap_err();
        assert!(matches!(error, WeightsError::Checksum { .. }));
        assert!(error.to_string().contains("corrupt"), "{error}");
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let file = linear_file();
        let error = load(&file, ModelKind::Classifier, &Device::flex(), |_: &serde_json::Value, device| {
            Ok(LinearConfig::new(4, 2).init(device))
        })
        .unwrap_err();
        assert!(matches!(error, WeightsError::Record { .. }), "{error}");
    }

    /// Replaces a file's payload and fixes its length and checksum, as a crafted file would.
    fn with_payload(file: &[u8], payload: Vec<u8>) -> Vec<u8> {
        let (header, _) = decode(file).unwrap();
        assemble(header.kind, header.config, header.storage, &payload).unwrap()
    }

    fn int8_linear_file() -> (Linear, Vec<u8>) {
        let device = Device::flex();
        device.seed(11);
        let linear = LinearConfig::new(3, 2).init(&device);
        let file = encode(ModelKind::Classifier, serde_json::json!({"d_input": 3}), linear.clone(), StorageType::Int8).unwrap();
        (linear, file)
    }

    fn tensor(name: &str, dtype: DType, dims: Vec<usize>, bytes: Vec<u8>) -> burn_pack::Tensor {
        burn_pack::Tensor::new(name.to_string(), dtype, dims, None, Bytes::from_bytes_vec(bytes))
    }

    fn pack(tensors: Vec<burn_pack::Tensor>) -> Vec<u8> {
        burn_pack::Writer::new(tensors).into_bytes().unwrap().to_vec()
    }

    #[test]
    fn int8_file_round_trips_within_half_a_step() {
        let (linear, file) = int8_linear_file();

        let loaded = load_linear(&file).unwrap();

        let original = linear.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let restored = loaded.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let largest = original.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        for (a, b) in original.iter().zip(&restored) {
            assert!((a - b).abs() <= largest / 254.0 + 1e-6, "{a} became {b}");
        }
        assert_eq!(decode(&file).unwrap().0.storage, StorageType::Int8);
    }

    #[test]
    fn int8_stores_one_byte_per_matrix_weight() {
        let device = Device::flex();
        let linear = LinearConfig::new(200, 100).init(&device);
        let config = serde_json::json!({});
        let half = encode(ModelKind::Classifier, config.clone(), linear.clone(), StorageType::F16).unwrap();
        let int8 = encode(ModelKind::Classifier, config, linear, StorageType::Int8).unwrap();

        // 20,000 weights: 40,000 bytes in f16, 20,000 in 8 bits plus a few hundred of scales.
        assert!(half.len() - int8.len() > 19_000, "f16 {} bytes, int8 {} bytes", half.len(), int8.len());
    }

    #[test]
    fn version_1_files_still_load() {
        let mut file = linear_file();
        file[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert!(load_linear(&file).is_ok());
    }

    #[test]
    fn version_1_file_with_int8_is_rejected() {
        let (_, mut file) = int8_linear_file();
        file[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(decode(&file), Err(WeightsError::Header(_))));
    }

    #[test]
    fn int8_tensor_without_scales_is_rejected() {
        let (_, file) = int8_linear_file();
        let payload = pack(vec![
            tensor("weight", DType::I8, vec![3, 2], vec![1; 6]),
            tensor("bias", DType::F16, vec![2], vec![0; 4]),
        ]);

        let error = load_linear(&with_payload(&file, payload)).unwrap_err();

        assert!(error.to_string().contains("weight has no scales"), "{error}");
    }

    #[test]
    fn scales_without_their_tensor_are_rejected() {
        let (_, file) = int8_linear_file();
        let payload = pack(vec![
            tensor("weight", DType::F32, vec![3, 2], vec![0; 24]),
            tensor("bias", DType::F32, vec![2], vec![0; 8]),
            tensor("other:scale", DType::F32, vec![1, 2], vec![0; 8]),
        ]);

        let error = load_linear(&with_payload(&file, payload)).unwrap_err();

        assert!(matches!(error, WeightsError::Payload(_)), "{error}");
    }

    #[test]
    fn payload_cut_short_is_rejected() {
        let (_, file) = int8_linear_file();
        let mut payload = pack(vec![
            tensor("weight", DType::F32, vec![3, 2], vec![0; 24]),
            tensor("bias", DType::F32, vec![2], vec![0; 8]),
        ]);
        payload.truncate(payload.len() - 4);

        let error = load_linear(&with_payload(&file, payload)).unwrap_err();

        assert!(matches!(error, WeightsError::Payload(_)), "{error}");
    }

    #[test]
    fn unexpected_element_type_is_rejected() {
        let (_, file) = int8_linear_file();
        let payload = pack(vec![
            tensor("weight", DType::I64, vec![3, 2], vec![0; 48]),
            tensor("bias", DType::F16, vec![2], vec![0; 4]),
        ]);

        let error = load_linear(&with_payload(&file, payload)).unwrap_err();

        assert!(matches!(error, WeightsError::Payload(_)), "{error}");
        assert!(error.to_string().contains("I64"), "{error}");
    }

    #[test]
    fn tensor_type_mismatch_is_rejected() {
        let file = linear_file();
        let payload = pack(vec![
            tensor("weight", DType::I8, vec![3, 2], vec![1; 6]),
            tensor("weight:scale", DType::F32, vec![1, 1], vec![0; 4]),
            tensor("bias", DType::F16, vec![2], vec![0; 4]),
        ]);

        let error = load_linear(&with_payload(&file, payload)).unwrap_err();

        assert!(error.to_string().contains("the header says f16 storage"), "{error}");
    }

    #[test]
    fn huge_config_is_rejected_before_allocating() {
        // 2^34 × 2 weights would need 128 GiB; the load must fail on the shapes without
        // initializing the module's parameters.
        let file = linear_file();
        let error = load(&file, ModelKind::Classifier, &Device::flex(), |_: &serde_json::Value, device| {
            Ok(LinearConfig::new(1 << 34, 2).init(device))
        })
        .unwrap_err();

        assert!(matches!(error, WeightsError::Record { .. }), "{error}");
    }

    #[test]
    fn payload_that_is_not_a_record_is_rejected() {
        let (_, file) = int8_linear_file();
        let error = load_linear(&with_payload(&file, b"not a burnpack".to_vec())).unwrap_err();
        assert!(matches!(error, WeightsError::Payload(_)), "{error}");
    }

    #[test]
    fn weights_beyond_f16_are_not_exported() {
        let device = Device::flex();
        let mut linear = LinearConfig::new(3, 2).init(&device);
        linear.weight = linear.weight.map(|w| w.ones_like().mul_scalar(1e6));
        let config = serde_json::json!({"d_input": 3});

        let error = encode(ModelKind::Classifier, config.clone(), linear.clone(), StorageType::F16).unwrap_err();

        assert!(matches!(error, WeightsError::NonFinite(6)), "{error}");
        assert!(encode(ModelKind::Classifier, config.clone(), linear.clone(), StorageType::F32).is_ok());

        // int8 stores vectors such as biases in f16.
        let mut linear = linear;
        linear.bias = linear.bias.map(|bias| bias.map(|b| b.ones_like().mul_scalar(1e6)));
        let error = encode(ModelKind::Classifier, config, linear, StorageType::Int8).unwrap_err();
        assert!(matches!(error, WeightsError::NonFinite(2)), "{error}");
    }

    #[test]
    fn non_finite_weights_are_rejected() {
        let device = Device::flex();
        let mut linear = LinearConfig::new(3, 2).init(&device);
        linear.weight = linear.weight.map(|w| w.ones_like().mul_scalar(0.375));
        let file = encode(ModelKind::Classifier, serde_json::json!({"d_input": 3}), linear, StorageType::F32).unwrap();

        // `encode` rejects NaN itself, so the NaN goes into the payload's bytes.
        let (_, payload) = decode(&file).unwrap();
        let mut payload = payload.to_vec();
        let value = 0.375f32.to_le_bytes();
        let positions: Vec<usize> = (0..payload.len() - 3).filter(|&i| payload[i..i + 4] == value).collect();
        assert_eq!(positions.len(), 6, "the six weights in the payload");
        for i in positions {
            payload[i..i + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        }

        let error = load_linear(&with_payload(&file, payload)).unwrap_err();

        assert!(matches!(error, WeightsError::NonFinite(6)), "{error}");
    }
}
