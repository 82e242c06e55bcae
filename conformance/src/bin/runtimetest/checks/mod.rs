pub mod fs;
pub mod linux;
pub mod process;
