//! Fitted codecs (FORMAT.md 9): everything edge and server agree on once — the sample shape and
//! dtype, the quantizer, and a context model trained on calibration samples — so that each blob
//! carries only what changes per sample.
//!
//! Why: split computing sends one activation per request, and on such small maps a
//! self-contained container spends a large part of its bytes on things that do not change
//! between requests (shape, parameters, tables). A codec is serialized once (`to_bytes`), is
//! named by the SHA-256 of that serialization (`id`), and every blob starts with 7 bytes: a tag,
//! two bytes of the id, and a CRC-32 that also covers the whole id, so a blob decoded with
//! another codec is refused, never misread.

use sha2::{Digest, Sha256};

use crate::buffer::{self, Pod};
use crate::error::{corrupt, CodecError, Result};
use crate::format::container::FloatType;
use crate::format::fitted::{self, channels_of, check_affine, hex, levels, pack, unpack, MAX_NDIM};
use crate::layout::levels;
use crate::model::fit::{self, Calibration, FitOptions, FitReport, Sample};
use crate::model::pctx::{self, Model, Tables, NO_AXIS};
use crate::quant::{self, Affine, Channels, NonFinite};

// The fields a codec is made of and its blobs' header, as the byte layout names them.
pub use crate::format::fitted::{BlobInfo, BlobKind, Quantizer};

/// Where the range of a fitted quantizer comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Clip {
    /// The calibration samples' min/max (per channel with an axis).
    Calibration,
    /// Given ranges: one, or one per channel.
    Ranges(Vec<(f32, f32)>),
    /// Every sample's own min/max, sent in its blob.
    PerSample,
}

#[derive(Debug, Clone)]
pub struct Codec {
    pub float_type: FloatType,
    pub bits: u8,
    /// The sample shape; `None` for an axis whose length each blob states.
    pub shape: Vec<Option<usize>>,
    pub quantizer: Quantizer,
    pub model: Model,
    tables_: std::sync::Arc<Tables>,
    bytes: Vec<u8>,
    id: [u8; 32],
}

impl Codec {
    /// A codec from its parts; checks them and computes its serialization and id.
    pub fn new(
        float_type: FloatType,
        bits: u8,
        shape: Vec<Option<usize>>,
        quantizer: Quantizer,
        model: Model,
    ) -> Result<Codec> {
        let mut codec = Codec {
            float_type,
            bits,
            shape,
            quantizer,
            model,
            tables_: std::sync::Arc::new(Tables::empty()),
            bytes: Vec::new(),
            id: [0; 32],
        };
        codec.check().map_err(|e| match e {
            CodecError::Corrupt(m) => CodecError::InvalidArgument(m),
            e => e,
        })?;
        codec.bytes = codec.serialize();
        codec.id = Sha256::digest(&codec.bytes).into();
        codec.tables_ = std::sync::Arc::new(Tables::new(&codec.model));
        Ok(codec)
    }

    fn check(&self) -> Result<()> {
        let ndim = self.shape.len();
        if ndim > MAX_NDIM {
            return Err(corrupt!("codec sample of {ndim} dimensions"));
        }
        if !(1..=pctx::MAX_BITS).contains(&self.bits) || self.bits != self.model.bits {
            return Err(corrupt!(
                "codec of {} bits with a {}-bit model",
                self.bits,
                self.model.bits
            ));
        }
        let fixed_axis = |a: u8, what: &str| -> Result<Option<usize>> {
            if a == NO_AXIS {
                return Ok(None);
            }
            match self.shape.get(a as usize) {
                Some(Some(d)) => Ok(Some(*d)),
                Some(None) => Err(corrupt!("the {what} axis {a} has no fixed length")),
                None => Err(corrupt!("{what} axis {a} of a {ndim}-d sample")),
            }
        };
        let group_len = fixed_axis(self.model.axis_g, "group")?;
        self.model.validate(ndim, group_len)?;
        if self.model.plane_lanes && self.model.axis_y == crate::model::pctx::NO_AXIS {
            return Err(corrupt!("plane lanes (codec flag 0x01) without an up axis"));
        }
        check_quantizer(&self.quantizer, self.bits, &self.shape)?;
        // The model's missing-neighbour fill is the code of zero of each quantization
        // channel, so the sample must have fixed-size channels too (checked above).
        Ok(())
    }

    /// The serialization version this codec needs: 4 if its lanes own whole planes; else 3 if
    /// its model's predictor is med-residual; else 1 unless its quantizer is of kind 2 or 3, or
    /// per sample along a variable axis.
    pub fn version(&self) -> u8 {
        if self.model.plane_lanes {
            return 4;
        }
        if self.model.predictor == crate::model::pctx::Predictor::MedResidual {
            return 3;
        }
        match &self.quantizer {
            Quantizer::Fixed { .. } => 1,
            Quantizer::PerSample { axis } => match axis {
                Some(a) if self.shape.get(*a as usize) == Some(&None) => 2,
                _ => 1,
            },
            Quantizer::DeadZone { .. } | Quantizer::Levels { .. } => 2,
        }
    }

    fn serialize(&self) -> Vec<u8> {
        fitted::write_codec(
            self.version(),
            self.float_type,
            self.bits,
            &self.shape,
            &self.quantizer,
            &self.model,
        )
    }

    /// Reads a serialization (`to_bytes`), checking everything before use.
    pub fn from_bytes(data: &[u8]) -> Result<Codec> {
        let fitted::CodecFields {
            version,
            float_type,
            bits,
            shape,
            quantizer,
            model,
        } = fitted::read_codec(data)?;
        let mut codec = Codec {
            float_type,
            bits,
            shape,
            quantizer,
            model,
            tables_: std::sync::Arc::new(Tables::empty()),
            bytes: data.to_vec(),
            id: Sha256::digest(data).into(),
        };
        codec.check()?;
        // A codec is written with the oldest version that has what it uses (FORMAT.md 9.2).
        if version != codec.version() {
            return Err(corrupt!(
                "codec serialization is not canonical: labelled version {version}, needs version {}",
                codec.version()
            ));
        }
        // The readers take minimal varints and exact lengths only, so what was read writes back
        // to the same bytes: one codec has one serialization, and one id.
        debug_assert!(
            codec.serialize() == data,
            "codec serialization is not canonical"
        );
        codec.tables_ = std::sync::Arc::new(Tables::new(&codec.model));
        Ok(codec)
    }

    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    /// Checks an input shape against the codec's.
    pub fn check_shape(&self, shape: &[usize]) -> Result<()> {
        let ok = shape.len() == self.shape.len()
            && shape
                .iter()
                .zip(&self.shape)
                .all(|(&d, &want)| want.is_none_or(|w| w == d));
        if !ok {
            let want: Vec<String> = self
                .shape
                .iter()
                .map(|d| d.map_or("*".into(), |d| d.to_string()))
                .collect();
            return Err(CodecError::InvalidArgument(format!(
                "this codec takes samples of shape ({}), got {shape:?}",
                want.join(", ")
            )));
        }
        Ok(())
    }

    /// Quantizes one sample (C order, `shape`) into codes, with the parameters used.
    pub fn quantize(
        &self,
        x: &[f32],
        shape: &[usize],
        non_finite: NonFinite,
    ) -> Result<(Vec<u8>, Vec<Affine>)> {
        self.check_shape(shape)?;
        quantize_sample(&self.quantizer, self.bits, x, shape, non_finite)
    }

    /// Compresses one sample into a fitted blob.
    pub fn compress(&self, x: &[f32], shape: &[usize], non_finite: NonFinite) -> Result<Vec<u8>> {
        let (q, params) = self.quantize(x, shape, non_finite)?;
        Ok(self.encode_codes(&q, shape, &params))
    }

    /// The blob of codes `q` (already quantized with `params`).
    pub fn encode_codes(&self, q: &[u8], shape: &[usize], params: &[Affine]) -> Vec<u8> {
        if q.is_empty() {
            return self.assemble(BlobKind::Raw, shape, params, &[]);
        }
        if q.iter().all(|&c| c == q[0]) {
            return self.assemble(BlobKind::Constant, shape, params, &q[..1]);
        }
        let ch = channels_of(shape, self.quantizer.axis());
        let fills: Vec<u8> = params.iter().map(|a| a.zero_point as u8).collect();
        let body = pctx::encode(&self.model, &self.tables_, shape, q, &fills, ch);
        if body.len() < self.raw_len(q.len()) {
            self.assemble(BlobKind::Coded, shape, params, &body)
        } else {
            let mut packed = Vec::with_capacity(self.raw_len(q.len()));
            pack(q, self.bits, &mut packed);
            self.assemble(BlobKind::Raw, shape, params, &packed)
        }
    }

    /// Bytes of `n` codes packed (a raw body).
    pub fn raw_len(&self, n: usize) -> usize {
        (n * self.bits as usize).div_ceil(8)
    }

    /// A blob around a body (FORMAT.md 9.5): the header, the variable lengths, per-sample
    /// parameters, the body, and the CRC.
    pub fn assemble(
        &self,
        kind: BlobKind,
        shape: &[usize],
        params: &[Affine],
        body: &[u8],
    ) -> Vec<u8> {
        fitted::write_blob(
            &self.id,
            kind,
            &self.shape,
            &self.quantizer,
            shape,
            params,
            body,
        )
    }

    /// The tables the GPU kernels read.
    pub fn tables(&self) -> &Tables {
        &self.tables_
    }

    /// The quantization channels of a sample shape.
    pub fn channels(&self, shape: &[usize]) -> Channels {
        channels_of(shape, self.quantizer.axis())
    }

    /// Parses and checks a blob's header, variable dimensions and parameters: everything but
    /// the body, which starts at `header_bytes`.
    pub fn describe(&self, blob: &[u8], max_output_bytes: u64) -> Result<BlobInfo> {
        fitted::read_blob_header(
            blob,
            &self.id,
            self.float_type,
            self.bits,
            &self.shape,
            &self.quantizer,
            max_output_bytes,
        )
    }

    /// The codes of a blob, with its shape and parameters.
    pub fn decode_codes(&self, blob: &[u8], max_output_bytes: u64) -> Result<(BlobInfo, Vec<u8>)> {
        let info = self.describe(blob, max_output_bytes)?;
        let n = info.count();
        let mut q = buffer::zeroed::<u8>(n + pctx::DECODE_PAD)?;
        self.decode_body(blob, &info, &mut q)?;
        q.truncate(n);
        if let Quantizer::Levels { books, index, .. } = &self.quantizer {
            let ch = channels_of(&info.shape, self.quantizer.axis());
            levels::check_codes(&q, books, index, ch)?;
        }
        Ok((info, q))
    }

    /// How often each code occurs in a blob (its body decoded, and so verified), without a code
    /// array where the body does not need one: a constant body declares its count, whatever it
    /// is, in one byte, and `inspect` must not hold a byte per declared element for it.
    pub fn code_counts(
        &self,
        blob: &[u8],
        max_output_bytes: u64,
    ) -> Result<(BlobInfo, [u64; 256])> {
        let info = self.describe(blob, max_output_bytes)?;
        let mut counts = [0u64; 256];
        if info.kind == BlobKind::Constant {
            let code = self.constant_code(blob, &info)?;
            if let Quantizer::Levels { books, index, .. } = &self.quantizer {
                let ch = channels_of(&info.shape, self.quantizer.axis());
                let used = if ch.channels == 1 {
                    &index[..1]
                } else {
                    &index[..ch.channels]
                };
                if used
                    .iter()
                    .any(|&b| code as usize >= books[b as usize].levels.len())
                {
                    return Err(corrupt!("code {code} past the last level of its codebook"));
                }
            }
            counts[code as usize] = info.count() as u64;
            return Ok((info, counts));
        }
        let (info, q) = self.decode_codes(blob, max_output_bytes)?;
        counts.copy_from_slice(&crate::entropy::histogram::histogram_u8(&q));
        Ok((info, counts))
    }

    /// The one code of a constant body (kind 2), checked (FORMAT.md 9.5).
    fn constant_code(&self, blob: &[u8], info: &BlobInfo) -> Result<u8> {
        let body = &blob[info.header_bytes..];
        if body.len() != 1 || info.count() == 0 || body[0] as i32 > levels(self.bits) {
            return Err(corrupt!("constant body of {} bytes", body.len()));
        }
        Ok(body[0])
    }

    /// Decodes the body of a described blob into the first `n` bytes of `q`, one code per
    /// element; `q` has `pctx::DECODE_PAD` bytes more, so that the context decoder needs no
    /// padded buffer of its own, nor a copy out of it.
    fn decode_body(&self, blob: &[u8], info: &BlobInfo, q: &mut [u8]) -> Result<()> {
        let body = &blob[info.header_bytes..];
        let n = info.count();
        match info.kind {
            BlobKind::Raw => unpack(body, self.bits, &mut q[..n])?,
            BlobKind::Constant => q[..n].fill(self.constant_code(blob, info)?),
            BlobKind::Coded => {
                if n == 0 {
                    return Err(corrupt!("a coded body for an empty sample"));
                }
                let ch = channels_of(&info.shape, self.quantizer.axis());
                let fills: Vec<u8> = info.params.iter().map(|a| a.zero_point as u8).collect();
                let q = &mut q[..n + pctx::DECODE_PAD];
                pctx::decode_padded(&self.model, &self.tables_, &info.shape, body, &fills, ch, q)?;
            }
        }
        Ok(())
    }

    /// Decompresses a blob to float32 values (C order) with its shape.
    pub fn decompress(&self, blob: &[u8], max_output_bytes: u64) -> Result<(Vec<usize>, Vec<f32>)> {
        self.decompress_as(blob, max_output_bytes, |x| x)
    }

    /// Decompresses a blob to `conv` of each float32 value (FORMAT.md 9.5: float32, then the
    /// codec's dtype), holding nothing as large as the output besides the output: the codes are
    /// decoded into the output's own bytes, at offset `(size_of O - 1) * n` (with the context
    /// decoder's few spare bytes after them), and dequantized in place, front to back, as the
    /// container decoder does. Every buffer whose size a blob declares is allocated fallibly.
    pub fn decompress_as<O: Pod>(
        &self,
        blob: &[u8],
        max_output_bytes: u64,
        conv: impl Fn(f32) -> O,
    ) -> Result<(Vec<usize>, Vec<O>)> {
        let info = self.describe(blob, max_output_bytes)?;
        let n = info.count();
        let size = std::mem::size_of::<O>();
        let spare = pctx::DECODE_PAD.div_ceil(size);
        let mut out = buffer::zeroed::<O>(n + spare)?;
        let at = (size - 1) * n;
        {
            let bytes = &mut buffer::bytes_mut(&mut out)[at..];
            self.decode_body(blob, &info, bytes)?;
        }
        self.dequantize_in_place(&mut out, at, n, &info, conv)?;
        out.truncate(n);
        Ok((info.shape, out))
    }

    /// `dequantize` of the `n` codes held at byte `at = (size_of O - 1) * n` of `out`, into
    /// `out[..n]`: a block of codes is copied out before its elements are written, and the bytes
    /// of element `i` end at `size_of O * (i + 1) <= at + i + 1`, at or before the code of any
    /// later element.
    fn dequantize_in_place<O: Pod>(
        &self,
        out: &mut [O],
        at: usize,
        n: usize,
        info: &BlobInfo,
        conv: impl Fn(f32) -> O,
    ) -> Result<()> {
        const BLOCK: usize = 1 << 14;
        let ch = channels_of(&info.shape, self.quantizer.axis());
        // Blocks of at most the sample: two arrays of BLOCK on the stack were 80 KiB to clear
        // on every call, a microsecond of a 1x32x7x7 decompress (NOTES.md 75).
        let block = n.min(BLOCK);
        let (mut codes, mut values) = (vec![0u8; block], vec![0f32; block]);
        let mut start = 0;
        while start < n {
            let end = (start + BLOCK).min(n);
            let (codes, values) = (&mut codes[..end - start], &mut values[..end - start]);
            codes.copy_from_slice(&buffer::bytes_mut(out)[at + start..at + end]);
            let mut bad = None;
            ch.runs(start, end, |a, b, c| {
                let (q, v) = (
                    &codes[a - start..b - start],
                    &mut values[a - start..b - start],
                );
                match &self.quantizer {
                    Quantizer::Levels { books, index, .. } => {
                        let levels = &books[index[c] as usize].levels;
                        for (y, &code) in v.iter_mut().zip(q) {
                            match levels.get(code as usize) {
                                Some(&l) => *y = l,
                                None => bad = Some(code),
                            }
                        }
                    }
                    _ => quant::dequantize_run_f32(q, v, info.params[c]),
                }
            });
            if let Some(code) = bad {
                return Err(corrupt!("code {code} past the last level of its codebook"));
            }
            for (o, &v) in out[start..end].iter_mut().zip(values.iter()) {
                *o = conv(v);
            }
            start = end;
        }
        Ok(())
    }

    /// Values of codes `q` of a sample of `shape`, quantized with `params` (`quantize`'s, or a
    /// blob's). A code past its codebook's last level is Corrupt.
    pub fn dequantize(
        &self,
        q: &[u8],
        shape: &[usize],
        params: &[Affine],
        out: &mut [f32],
    ) -> Result<()> {
        let ch = channels_of(shape, self.quantizer.axis());
        match &self.quantizer {
            Quantizer::Levels { books, index, .. } => {
                levels::dequantize_levels(q, books, index, ch, out)
            }
            _ => {
                quant::dequantize(q, params, ch, out);
                Ok(())
            }
        }
    }

    /// What a sample decodes to, without coding it: `decompress(compress(x))` (a calibration
    /// search runs the model on this).
    pub fn round_trip(
        &self,
        x: &[f32],
        shape: &[usize],
        non_finite: NonFinite,
    ) -> Result<Vec<f32>> {
        let (q, params) = self.quantize(x, shape, non_finite)?;
        let mut out = vec![0f32; q.len()];
        self.dequantize(&q, shape, &params, &mut out)?;
        Ok(out)
    }

    /// Fits a codec to calibration samples (float32, C order each, all of `ndim` axes).
    pub fn fit(
        samples: &[(&[f32], &[usize])],
        float_type: FloatType,
        bits: u8,
        axis: Option<u8>,
        clip: &Clip,
        non_finite: NonFinite,
    ) -> Result<(Codec, FitReport)> {
        let shape = sample_shape(samples, bits, axis, matches!(clip, Clip::PerSample))?;
        let ch0 = channels_of(samples[0].1, axis);
        let quantizer = match clip {
            Clip::PerSample => Quantizer::PerSample { axis },
            Clip::Ranges(ranges) => {
                if ranges.len() != 1 && ranges.len() != ch0.channels {
                    return Err(CodecError::InvalidArgument(format!(
                        "clip has {} ranges, expected 1 or {}",
                        ranges.len(),
                        ch0.channels
                    )));
                }
                let mut params = Vec::with_capacity(ch0.channels);
                for c in 0..ch0.channels {
                    let (lo, hi) = ranges[c.min(ranges.len() - 1)];
                    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                        return Err(CodecError::InvalidArgument(format!(
                            "clip range ({lo}, {hi}) is not finite lo <= hi"
                        )));
                    }
                    params.push(Affine::from_range(lo, hi, bits));
                }
                Quantizer::Fixed { axis, params }
            }
            Clip::Calibration => {
                let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); ch0.channels];
                for &(x, s) in samples {
                    let (r, _) = quant::min_max(x, channels_of(s, axis));
                    for (acc, &(lo, hi)) in ranges.iter_mut().zip(&r) {
                        acc.0 = acc.0.min(lo);
                        acc.1 = acc.1.max(hi);
                    }
                }
                let params = ranges
                    .iter()
                    .map(|&(lo, hi)| {
                        if lo > hi {
                            Affine::from_range(0.0, 0.0, bits)
                        } else {
                            Affine::from_range(lo, hi, bits)
                        }
                    })
                    .collect();
                Quantizer::Fixed { axis, params }
            }
        };
        Self::fit_model(samples, float_type, bits, shape, quantizer, non_finite)
    }

    /// Fits a codec with a given quantizer (any kind; fixed parameters already chosen, e.g. by
    /// a calibration search): only the context model is trained here.
    pub fn fit_quantizer(
        samples: &[(&[f32], &[usize])],
        float_type: FloatType,
        bits: u8,
        quantizer: Quantizer,
        non_finite: NonFinite,
    ) -> Result<(Codec, FitReport)> {
        let per_sample = matches!(quantizer, Quantizer::PerSample { .. });
        let shape = sample_shape(samples, bits, quantizer.axis(), per_sample)?;
        Self::fit_model(samples, float_type, bits, shape, quantizer, non_finite)
    }

    fn fit_model(
        samples: &[(&[f32], &[usize])],
        float_type: FloatType,
        bits: u8,
        shape: Vec<Option<usize>>,
        quantizer: Quantizer,
        non_finite: NonFinite,
    ) -> Result<(Codec, FitReport)> {
        let axis = quantizer.axis();
        // Check the quantizer against the shape before using it on samples.
        check_quantizer(&quantizer, bits, &shape).map_err(|e| match e {
            CodecError::Corrupt(m) => CodecError::InvalidArgument(m),
            e => e,
        })?;
        // Quantize every sample as the codec will.
        let mut coded = Vec::with_capacity(samples.len());
        for &(x, s) in samples {
            let (q, params) = quantize_sample(&quantizer, bits, x, s, non_finite)?;
            let fills: Vec<u8> = params.iter().map(|a| a.zero_point as u8).collect();
            coded.push((q, fills, channels_of(s, axis)));
        }
        let cal = Calibration {
            samples: coded
                .iter()
                .zip(samples)
                .map(|((q, fills, ch), &(_, s))| Sample {
                    codes: q,
                    shape: s,
                    fills,
                    fill_ch: *ch,
                })
                .collect(),
        };
        let mut opts = FitOptions::new(bits);
        opts.channel_axis = axis.map(|a| a as usize);
        opts.variable_axes = (0..shape.len()).filter(|&a| shape[a].is_none()).collect();
        opts.plane_lanes = true;
        let (model, report) = fit::fit(&cal, &opts)?;
        let codec = Codec::new(float_type, bits, shape, quantizer, model)?;
        Ok((codec, report))
    }
}

/// The checks of a quantizer that need the codec's bits and sample shape (FORMAT.md 9.2).
fn check_quantizer(quantizer: &Quantizer, bits: u8, shape: &[Option<usize>]) -> Result<()> {
    let ndim = shape.len();
    let fixed_axis = |a: u8, what: &str| -> Result<Option<usize>> {
        match shape.get(a as usize) {
            Some(Some(d)) => Ok(Some(*d)),
            Some(None) => Err(corrupt!("the {what} axis {a} has no fixed length")),
            None => Err(corrupt!("{what} axis {a} of a {ndim}-d sample")),
        }
    };
    let axis = quantizer.axis();
    let channels = match (axis, &quantizer) {
        (None, _) => 1,
        // Per-sample parameters may run along a variable axis (one per token).
        (Some(a), Quantizer::PerSample { .. }) if (a as usize) < ndim => 1,
        (Some(a), _) => fixed_axis(a, "quantization")?.unwrap_or(1),
    };
    let check_params = |params: &[Affine]| -> Result<()> {
        if params.len() != channels.max(1) || params.iter().any(|a| !check_affine(a, bits)) {
            return Err(corrupt!(
                "{} quantization parameters for {channels} channels, or one invalid",
                params.len()
            ));
        }
        Ok(())
    };
    match &quantizer {
        Quantizer::PerSample { .. } => {}
        Quantizer::Fixed { params, .. } => check_params(params)?,
        Quantizer::DeadZone {
            params, dead_zone, ..
        } => {
            check_params(params)?;
            if dead_zone.len() != params.len()
                || dead_zone.iter().any(|t| !(t.is_finite() && *t >= 0.0))
            {
                return Err(corrupt!(
                    "dead zones must be finite, >= 0 and one per channel"
                ));
            }
        }
        Quantizer::Levels { books, index, .. } => {
            if books.is_empty() || index.len() != channels.max(1) {
                return Err(corrupt!(
                    "{} codebooks and {} codebook indices for {channels} channels",
                    books.len(),
                    index.len()
                ));
            }
            for b in books {
                b.validate(bits)?;
            }
            if let Some(&i) = index.iter().find(|&&i| i as usize >= books.len()) {
                return Err(corrupt!("codebook index {i} of {} codebooks", books.len()));
            }
        }
    }
    Ok(())
}

/// The codec's sample shape from calibration samples (an axis whose length differs between
/// them is variable), after checking them and the options.
fn sample_shape(
    samples: &[(&[f32], &[usize])],
    bits: u8,
    axis: Option<u8>,
    per_sample: bool,
) -> Result<Vec<Option<usize>>> {
    let Some(&(_, first)) = samples.first() else {
        return Err(CodecError::InvalidArgument(
            "Codec.fit needs at least one calibration sample".into(),
        ));
    };
    if !(1..=pctx::MAX_BITS).contains(&bits) {
        return Err(CodecError::InvalidArgument(format!(
            "a fitted codec takes bits 1..={}, got {bits}",
            pctx::MAX_BITS
        )));
    }
    let ndim = first.len();
    if ndim > MAX_NDIM {
        return Err(CodecError::InvalidArgument(format!(
            "samples of more than {MAX_NDIM} dimensions are not supported"
        )));
    }
    for &(x, shape) in samples {
        if shape.len() != ndim {
            return Err(CodecError::InvalidArgument(format!(
                "calibration samples have {} and {} dimensions",
                ndim,
                shape.len()
            )));
        }
        if x.len() != shape.iter().product::<usize>() {
            return Err(CodecError::InvalidArgument(
                "a calibration sample's data does not match its shape".into(),
            ));
        }
    }
    let shape: Vec<Option<usize>> = (0..ndim)
        .map(|a| {
            let d = first[a];
            samples.iter().all(|(_, s)| s[a] == d).then_some(d)
        })
        .collect();
    if let Some(a) = axis {
        // Per-sample parameters may follow a variable axis (one scale per token); fixed ones
        // need a fixed channel count.
        if a as usize >= ndim || (shape[a as usize].is_none() && !per_sample) {
            return Err(CodecError::InvalidArgument(format!(
                "axis {a} must be a fixed-length axis of the {ndim}-d samples"
            )));
        }
    }
    Ok(shape)
}

/// Quantizes one sample with a quantizer: its codes, and the parameters used.
fn quantize_sample(
    quantizer: &Quantizer,
    bits: u8,
    x: &[f32],
    shape: &[usize],
    non_finite: NonFinite,
) -> Result<(Vec<u8>, Vec<Affine>)> {
    let n: usize = shape.iter().product();
    if x.len() != n {
        return Err(CodecError::InvalidArgument(format!(
            "{} values for a sample of shape {shape:?}",
            x.len()
        )));
    }
    let ch = channels_of(shape, quantizer.axis());
    let mut q = vec![0u8; n];
    match quantizer {
        Quantizer::DeadZone {
            params, dead_zone, ..
        } => {
            levels::quantize_dead_zone(x, params, dead_zone, ch, bits, non_finite, &mut q)?;
            return Ok((q, params.clone()));
        }
        Quantizer::Levels { books, index, .. } => {
            levels::quantize_levels(x, books, index, ch, non_finite, &mut q)?;
            return Ok((q, quantizer.fixed_params().unwrap_or_default()));
        }
        _ => {}
    }
    let (params, finite): (Vec<Affine>, bool) = match quantizer {
        Quantizer::Fixed { params, .. } => {
            quant::quantize_unknown(x, params, ch, bits, non_finite, &mut q)?;
            return Ok((q, params.clone()));
        }
        Quantizer::PerSample { .. } => {
            let (ranges, finite) = quant::min_max(x, ch);
            (
                ranges
                    .iter()
                    .map(|&(lo, hi)| Affine::from_range(lo, hi, bits))
                    .collect(),
                finite,
            )
        }
        Quantizer::DeadZone { .. } | Quantizer::Levels { .. } => unreachable!("handled above"),
    };
    quant::quantize(x, &params, ch, bits, non_finite, finite, &mut q)?;
    Ok((q, params))
}
