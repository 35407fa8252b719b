//! Shared by the targets: decode any container the way the bindings do, checking what a
//! successful decode promises.
use splitans::format::container::{self, DType, ElemType};
use splitans::decompress;
use splitans::pipeline::feature;

pub const MAX_OUTPUT_BYTES: u64 = 64 << 20;

/// Decodes `data` as any container; returns the decoded element count on success.
pub fn decode_any(data: &[u8]) -> Option<usize> {
    let h = container::read_header(data).ok()?;
    container::check_output_size(&h, MAX_OUTPUT_BYTES).ok()?;
    let n = match h.elem {
        ElemType::Int(d) => match d {
            DType::U8 => decompress::<u8>(data, MAX_OUTPUT_BYTES, 1).ok()?.1.len(),
            DType::I8 => decompress::<i8>(data, MAX_OUTPUT_BYTES, 1).ok()?.1.len(),
            DType::U16 => decompress::<u16>(data, MAX_OUTPUT_BYTES, 1).ok()?.1.len(),
            DType::I16 => decompress::<i16>(data, MAX_OUTPUT_BYTES, 1).ok()?.1.len(),
            DType::U32 => decompress::<u32>(data, MAX_OUTPUT_BYTES, 1).ok()?.1.len(),
            DType::I32 => decompress::<i32>(data, MAX_OUTPUT_BYTES, 1).ok()?.1.len(),
            DType::U64 => decompress::<u64>(data, MAX_OUTPUT_BYTES, 1).ok()?.1.len(),
            DType::I64 => decompress::<i64>(data, MAX_OUTPUT_BYTES, 1).ok()?.1.len(),
        },
        ElemType::Float(_) => {
            let (meta, values) = feature::decompress(data, &h, MAX_OUTPUT_BYTES, 1).ok()?;
            let _ = feature::inspect(data, &h, MAX_OUTPUT_BYTES, 1);
            assert!(meta.bits >= 1 && meta.bits <= 16);
            values.len()
        }
    };
    assert_eq!(n, h.count);
    Some(n)
}
