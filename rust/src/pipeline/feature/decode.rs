//! Decoding a feature container (FORMAT.md 6.4, 6.6 and 10.4): the streams or context body
//! parsed by `format::feature` are decoded into codes, and the codes dequantized in place into
//! the output type that was asked for.

use super::*;

/// The element type a feature decodes to. The codec dequantizes in float32 (FORMAT.md 6.4);
/// the other outputs are converted from that value as the buffer is filled, so no float32
/// array is ever held beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    F32,
    /// Exact widening.
    F64,
    /// IEEE binary16 bit patterns, saturating: `quant::f16_bits`.
    F16Bits,
    /// bfloat16 bit patterns, saturating: `quant::bf16_bits`.
    BF16Bits,
}

impl Output {
    /// Bytes per element of the output.
    pub fn itemsize(self) -> usize {
        match self {
            Output::F32 => 4,
            Output::F64 => 8,
            Output::F16Bits | Output::BF16Bits => 2,
        }
    }
}

/// A decoded feature, in the element type that was asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16Bits(Vec<u16>),
    BF16Bits(Vec<u16>),
}

/// What a CSR walk hands out: every row-count block, and every nonzero with its flat index.
pub(super) trait CsrVisitor<C> {
    fn row_counts(&mut self, counts: &[u16]);
    fn nonzero(&mut self, index: usize, col: u16, value: C);
}

/// Decodes the three CSR streams together, block by block, and checks them (FORMAT.md 6.6
/// steps 3–5): the row counts add up to the number of column indices and values, columns
/// increase strictly within a row and stay below `M`, values stay within `bits`.
pub(super) fn walk_csr<C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    visit: &mut impl CsrVisitor<C>,
) -> Result<()> {
    let Body::Csr(csr) = &p.body else {
        unreachable!("walk_csr takes a CSR container");
    };
    let m = h.count / p.meta.rows;
    let top = if p.meta.bits < 16 {
        levels(p.meta.bits)
    } else {
        i32::MAX
    };
    let nnz = csr.cols.n;
    let mut row_blocks = stream::Blocks::<u16>::new(&csr.counts, threads)?;
    let mut col_reader = stream::SymbolReader::new(&csr.cols, threads)?;
    let mut value_reader = stream::SymbolReader::<C>::new(&csr.values, threads)?;
    let mut row = 0usize;
    let mut taken = 0usize;
    while let Some(block) = row_blocks.next_block()? {
        visit.row_counts(block);
        for &count in block {
            let base = row * m;
            let mut next = 0usize;
            if count as usize > nnz - taken {
                return Err(corrupt!(
                    "row counts add up to more than the {nnz} column indices and values"
                ));
            }
            taken += count as usize;
            for _ in 0..count {
                let c = col_reader.read()?;
                let v = value_reader.read()?;
                let col = c as usize;
                if col < next || col >= m {
                    return Err(corrupt!("column {col} out of order or range in row {row}"));
                }
                if v.to_i32() > top {
                    return Err(corrupt!("a code exceeds the {}-bit range", p.meta.bits));
                }
                visit.nonzero(base + col, c, v);
                next = col + 1;
            }
            row += 1;
        }
    }
    if taken != nnz {
        return Err(corrupt!(
            "row counts add up to {taken} nonzeros, the column indices and values hold {nnz}"
        ));
    }
    Ok(())
}

/// Writes decoded nonzeros into the codes, which hold every element's zero point.
struct Scatter<'c, C>(&'c mut [C]);

impl<C: Copy> CsrVisitor<C> for Scatter<'_, C> {
    fn row_counts(&mut self, _: &[u16]) {}
    #[inline(always)]
    fn nonzero(&mut self, index: usize, _: u16, value: C) {
        self.0[index] = value;
    }
}

/// Decodes the codes of every element into `codes` (`h.count` long): dense, CSR (scattered over
/// the channels' zero points) or context. Dense codes are not checked against `bits` here (the
/// dequantization does it, after every chunk decoded).
fn decode_codes<C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    codes: &mut [C],
    stages: &mut Stages,
) -> Result<()> {
    let mut clock = Clock::start(stages.timed);
    match &p.body {
        Body::Dense(view) => {
            stream::decode_into(view, codes, threads)?;
            stages.entropy += clock.lap();
        }
        Body::Context(body) => {
            let zps: Vec<i32> = p.meta.params.iter().map(|a| a.zero_point).collect();
            let codes = C::as_u8s_mut(codes).expect("context codes are bytes");
            context::decode(
                body,
                &zps,
                p.meta.channels,
                Geometry::of(&h.shape),
                p.meta.bits,
                codes,
            )?;
            stages.entropy += clock.lap();
        }
        Body::Pctx(model, body) => {
            let fills: Vec<u8> = p.meta.params.iter().map(|a| a.zero_point as u8).collect();
            let codes = C::as_u8s_mut(codes).expect("context codes are bytes");
            pctx::decode(
                &model.0,
                &model.1,
                &h.shape,
                body,
                &fills,
                p.meta.channels,
                codes,
            )?;
            stages.entropy += clock.lap();
        }
        Body::Csr(_) => {
            for_each_channel_run(codes.len(), p.meta.channels, 0, codes.len(), |a, b, c| {
                codes[a..b].fill(C::from_i32(p.meta.params[c].zero_point))
            });
            walk_csr(p, h, threads, &mut Scatter(codes))?;
            // The streams are decoded block by block as the scatter consumes them.
            stages.sparse += clock.lap();
        }
    }
    Ok(())
}

/// Calls `f(start, end, channel)` for the runs of `[from, to)` that lie in one channel.
#[inline]
fn for_each_channel_run(
    n: usize,
    ch: Channels,
    from: usize,
    to: usize,
    f: impl FnMut(usize, usize, usize),
) {
    debug_assert!(to <= n);
    ch.runs(from, to, f);
}

/// Elements dequantized per pass of `dequantize_in_place`.
const DEQUANT_BLOCK: usize = 1 << 14;

/// Dequantizes the codes held in the tail of `out`'s bytes (`buffer::tail_mut`) into `out`, in
/// place, front to back: a block of codes is copied out before its elements are written, and an
/// element's bytes end at or before the code of any later element. With `check`, a code above
/// `bits` is Corrupt.
fn dequantize_in_place<O: Pod, C: Code + Pod>(
    out: &mut [O],
    meta: &FeatureMeta,
    check: bool,
    conv: impl Fn(f32) -> O,
) -> Result<()> {
    let n = out.len();
    let top = levels(meta.bits);
    let check = check && meta.bits < 16;
    // At most the tensor, on the heap: an array of DEQUANT_BLOCK was 16-32 KiB of stack,
    // cleared on every call (NOTES.md 75).
    let mut codes = vec![C::default(); n.min(DEQUANT_BLOCK)];
    let mut start = 0;
    while start < n {
        let end = (start + DEQUANT_BLOCK).min(n);
        let block = &mut codes[..end - start];
        block.copy_from_slice(&buffer::tail_mut::<O, C>(out)[start..end]);
        if check && block.iter().fold(0, |m, c| m.max(c.to_i32())) > top {
            return Err(corrupt!("a code exceeds the {}-bit range", meta.bits));
        }
        for_each_channel_run(n, meta.channels, start, end, |a, b, c| {
            let Affine { scale, zero_point } = meta.params[c];
            for (o, &q) in out[a..b].iter_mut().zip(&block[a - start..b - start]) {
                *o = conv((q.to_i32() - zero_point) as f32 * scale);
            }
        });
        start = end;
    }
    Ok(())
}

fn decode_as<O: Pod + Send, C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    stages: &mut Stages,
    conv: impl Fn(f32) -> O + Sync,
) -> Result<Vec<O>> {
    let mut out = buffer::zeroed::<O>(h.count)?;
    decode_into_slice::<O, C>(p, h, threads, &mut out, stages, conv)?;
    Ok(out)
}

/// Decodes into `out` (`h.count` long). Dense codes go straight from the decoder's pieces into
/// `out` (`dense_fused`); CSR and context codes are decoded into the tail of `out`'s bytes and
/// dequantized in place.
fn decode_into_slice<O: Pod + Send, C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    out: &mut [O],
    stages: &mut Stages,
    conv: impl Fn(f32) -> O + Sync,
) -> Result<()> {
    assert_eq!(
        out.len(),
        h.count,
        "decode_into_slice: output of the wrong length"
    );
    if let Body::Dense(view) = &p.body {
        let mut clock = Clock::start(stages.timed);
        dense_fused::<O, C>(view, &p.meta, threads, out, conv)?;
        stages.entropy += clock.lap();
        return Ok(());
    }
    decode_codes::<C>(p, h, threads, buffer::tail_mut::<O, C>(out), stages)?;
    let mut clock = Clock::start(stages.timed);
    dequantize_in_place::<O, C>(out, &p.meta, false, conv)?;
    stages.quantize += clock.lap();
    Ok(())
}

/// The dense codes dequantized as they are decoded, a piece of 4096 at a time: no code array is
/// written or read back. Codes above `bits` make the container corrupt (FORMAT.md 6.6 step 4),
/// reported as `dequantize_in_place` reports them: after every chunk decoded.
fn dense_fused<O: Pod + Send, C: Code + Symbol + Pod>(
    view: &stream::StreamView<'_>,
    meta: &FeatureMeta,
    threads: usize,
    out: &mut [O],
    conv: impl Fn(f32) -> O + Sync,
) -> Result<()> {
    // A float32 output is converted by the identity (`decode_output`).
    let f32_out = std::any::TypeId::of::<O>() == std::any::TypeId::of::<f32>();
    let n = out.len();
    let top = levels(meta.bits);
    // One channel's codes of at most 8 bits in one chunk of 1 to 16 lanes: each code straight
    // to its value, by a table of the 2^bits values (the same binary32 operations as the loops
    // below).
    if meta.channels.channels == 1 && meta.bits <= 8 && matches!(view.lanes(), 1 | 2 | 4 | 8 | 16) {
        let Affine { scale, zero_point } = meta.params[0];
        let mut map = [conv(0.0); 256];
        for (q, v) in map.iter_mut().enumerate().take(top as usize + 1) {
            *v = conv((q as i32 - zero_point) as f32 * scale);
        }
        if let Some(r) = stream::decode_mapped(view, out, &map, top as u32) {
            return r;
        }
    }
    let highest = std::sync::atomic::AtomicI32::new(0);
    stream::decode_convert::<C, O>(view, out, threads, |codes, piece, first| {
        if meta.bits < 16 {
            let m = codes.iter().fold(0, |m, c| m.max(c.to_i32()));
            highest.fetch_max(m, std::sync::atomic::Ordering::Relaxed);
        }
        for_each_channel_run(n, meta.channels, first, first + codes.len(), |a, b, c| {
            let Affine { scale, zero_point } = meta.params[c];
            let (codes, piece) = (
                &codes[a - first..b - first],
                &mut piece[a - first..b - first],
            );
            // float32 output (the identity conversion): the vector loop.
            match (f32_out, buffer::cast_mut::<f32>(buffer::bytes_mut(piece))) {
                (true, Some(out)) => quant::dequantize_run_f32(codes, out, meta.params[c]),
                _ => dequantize_run(codes, piece, zero_point, scale, &conv),
            }
        });
    })?;
    if meta.bits < 16 && highest.into_inner() > top {
        return Err(corrupt!("a code exceeds the {}-bit range", meta.bits));
    }
    Ok(())
}

/// `out[i] = conv(f32(codes[i] - zero_point) * scale)` (FORMAT.md 6.4).
#[inline(always)]
fn dequantize_run<O, C: Code>(
    codes: &[C],
    out: &mut [O],
    zero_point: i32,
    scale: f32,
    conv: &impl Fn(f32) -> O,
) {
    for (o, &q) in out.iter_mut().zip(codes) {
        *o = conv((q.to_i32() - zero_point) as f32 * scale);
    }
}

fn decode_output<C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    output: Output,
    stages: &mut Stages,
) -> Result<Decoded> {
    Ok(match output {
        Output::F32 => Decoded::F32(decode_as::<f32, C>(p, h, threads, stages, |x| x)?),
        Output::F64 => Decoded::F64(decode_as::<f64, C>(p, h, threads, stages, f64::from)?),
        Output::F16Bits => {
            Decoded::F16Bits(decode_as::<u16, C>(p, h, threads, stages, quant::f16_bits)?)
        }
        Output::BF16Bits => Decoded::BF16Bits(decode_as::<u16, C>(
            p,
            h,
            threads,
            stages,
            quant::bf16_bits,
        )?),
    })
}

/// Decodes a feature container whose header is validated (and checked against the cap) into
/// `output`, adding the seconds of each stage to `stages`. It holds the output and a few small
/// buffers (2 MiB per CSR stream): the codes are decoded into the output's own bytes and
/// dequantized in place, and the CSR streams are decoded block by block as they are scattered.
pub fn decompress_to(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
    output: Output,
    stages: &mut Stages,
) -> Result<(FeatureMeta, Decoded)> {
    let mut clock = Clock::start(stages.timed);
    let p = parse(blob, h, max_output_bytes)?;
    stages.container += clock.lap();
    let out = if p.meta.bits <= 8 {
        decode_output::<u8>(&p, h, threads, output, stages)?
    } else {
        decode_output::<u16>(&p, h, threads, output, stages)?
    };
    Ok((p.meta, out))
}

/// A caller's buffer to decode a feature into, `h.count` elements of the chosen output type.
pub enum OutputSlice<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    /// float16 bit patterns (`quant::f16_bits`).
    F16Bits(&'a mut [u16]),
    /// bfloat16 bit patterns (`quant::bf16_bits`).
    BF16Bits(&'a mut [u16]),
}

impl OutputSlice<'_> {
    fn len(&self) -> usize {
        match self {
            OutputSlice::F32(o) => o.len(),
            OutputSlice::F64(o) => o.len(),
            OutputSlice::F16Bits(o) | OutputSlice::BF16Bits(o) => o.len(),
        }
    }
}

/// `decompress_to` into the caller's buffer (`h.count` elements): only small buffers are
/// allocated. The buffer is overwritten, also when decoding fails.
pub fn decompress_into(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
    out: OutputSlice<'_>,
    stages: &mut Stages,
) -> Result<FeatureMeta> {
    if out.len() != h.count {
        return Err(CodecError::InvalidArgument(format!(
            "the container holds {} elements, the output has room for {}",
            h.count,
            out.len()
        )));
    }
    let mut clock = Clock::start(stages.timed);
    let p = parse(blob, h, max_output_bytes)?;
    stages.container += clock.lap();
    decompress_parsed_into(&p, h, threads, out, stages)?;
    Ok(p.meta)
}

/// `decompress_into` of a container already parsed (`parse`): what a caller that must know the
/// container valid before it allocates the output calls.
pub fn decompress_parsed_into(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    out: OutputSlice<'_>,
    stages: &mut Stages,
) -> Result<()> {
    if out.len() != h.count {
        return Err(CodecError::InvalidArgument(format!(
            "the container holds {} elements, the output has room for {}",
            h.count,
            out.len()
        )));
    }
    fn run<C: Code + Symbol + Pod>(
        p: &Parsed<'_>,
        h: &Header,
        threads: usize,
        out: OutputSlice<'_>,
        stages: &mut Stages,
    ) -> Result<()> {
        match out {
            OutputSlice::F32(o) => decode_into_slice::<f32, C>(p, h, threads, o, stages, |x| x),
            OutputSlice::F64(o) => decode_into_slice::<f64, C>(p, h, threads, o, stages, f64::from),
            OutputSlice::F16Bits(o) => {
                decode_into_slice::<u16, C>(p, h, threads, o, stages, quant::f16_bits)
            }
            OutputSlice::BF16Bits(o) => {
                decode_into_slice::<u16, C>(p, h, threads, o, stages, quant::bf16_bits)
            }
        }
    }
    if p.meta.bits <= 8 {
        run::<u8>(p, h, threads, out, stages)
    } else {
        run::<u16>(p, h, threads, out, stages)
    }
}

/// Decodes a feature container whose header is validated: the dequantized float32 values.
pub fn decompress(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
) -> Result<(FeatureMeta, Vec<f32>)> {
    let (meta, out) = decompress_to(
        blob,
        h,
        max_output_bytes,
        threads,
        Output::F32,
        &mut Stages::default(),
    )?;
    let Decoded::F32(values) = out else {
        unreachable!("asked for float32");
    };
    Ok((meta, values))
}
