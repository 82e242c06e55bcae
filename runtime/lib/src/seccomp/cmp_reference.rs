//! The meaning of each SCMP_CMP_* operator on a 64-bit argument, written
//! plainly: the reference both the unit tests (through a BPF interpreter)
//! and the integration tests (through the kernel) check programs against.

/// Every operator the runtime-spec names.
pub const OPS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// Values around the 32-bit halves' boundaries.
pub const EDGES: [u64; 14] = [
    0,
    1,
    4,
    5,
    6,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0004,
    0x1_0000_0005,
    0x1_0000_0006,
    0x2_0000_0000,
    0x2_0000_0005,
    0xffff_ffff_0000_0005,
    u64::MAX,
];

/// Does `arg <op> value` hold? For MASKED_EQ `value` is the mask and
/// `value_two` the expected result.
pub fn holds(op: &str, arg: u64, value: u64, value_two: u64) -> bool {
    match op {
        "SCMP_CMP_NE" => arg != value,
        "SCMP_CMP_LT" => arg < value,
        "SCMP_CMP_LE" => arg <= value,
        "SCMP_CMP_EQ" => arg == value,
        "SCMP_CMP_GE" => arg >= value,
        "SCMP_CMP_GT" => arg > value,
        "SCMP_CMP_MASKED_EQ" => arg & value == value_two,
        _ => panic!("unknown operator {op}"),
    }
}
