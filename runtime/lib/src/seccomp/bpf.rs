//! A small classic-BPF assembler with forward labels.
//!
//! Conditional jumps in cBPF carry 8-bit offsets; `ja` carries 32 bits. Code
//! is written with labels and `Builder::assemble` resolves them, turning any
//! conditional branch whose target is more than 255 instructions away into a
//! branch to an adjacent `ja` trampoline (repeated until nothing moves).

/// One cBPF instruction, laid out like the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

pub(crate) const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub(crate) const ALU_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub(crate) const JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
pub(crate) const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Conditional jump opcodes (BPF_JMP | op | BPF_K).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    Eq = 0x15,
    Gt = 0x25,
    Ge = 0x35,
    Set = 0x45,
}

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

#[derive(Debug)]
enum Item {
    Load(u32),
    And(u32),
    Jump {
        cond: Cond,
        k: u32,
        jt: Label,
        jf: Label,
    },
    Ret(u32),
    Bind(Label),
}

#[derive(Debug, Default)]
pub(crate) struct Builder {
    items: Vec<Item>,
    labels: usize,
}

/// A label bound to no instruction or jumped to backwards: a generator bug.
#[derive(Debug)]
pub(crate) struct AssembleError(pub String);

impl Builder {
    pub(crate) fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    pub(crate) fn bind(&mut self, l: Label) {
        self.items.push(Item::Bind(l));
    }

    /// `A = *(u32 *)(seccomp_data + off)`
    pub(crate) fn load(&mut self, off: u32) {
        self.items.push(Item::Load(off));
    }

    pub(crate) fn and(&mut self, k: u32) {
        self.items.push(Item::And(k));
    }

    pub(crate) fn jump(&mut self, cond: Cond, k: u32, jt: Label, jf: Label) {
        self.items.push(Item::Jump { cond, k, jt, jf });
    }

    pub(crate) fn ret(&mut self, k: u32) {
        self.items.push(Item::Ret(k));
    }

    pub(crate) fn assemble(self) -> Result<Vec<SockFilter>, AssembleError> {
        // far[i] = (true branch via trampoline, false branch via trampoline)
        let mut far = vec![(false, false); self.items.len()];
        loop {
            let (pos, labels) = self.layout(&far)?;
            let mut changed = false;
            for (i, item) in self.items.iter().enumerate() {
                if let Item::Jump { jt, jf, .. } = item {
                    let next = pos[i] + 1;
                    for (branch, target) in [(0, jt), (1, jf)] {
                        let is_far = if branch == 0 { far[i].0 } else { far[i].1 };
                        if is_far {
                            continue;
                        }
                        let to = labels[target.0];
                        if to < next {
                            return Err(AssembleError(format!("backward jump at {i}")));
                        }
                        if to - next > u8::MAX as usize {
                            if branch == 0 {
                                far[i].0 = true;
                            } else {
                                far[i].1 = true;
                            }
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                return Ok(self.emit(&far, &pos, &labels));
            }
        }
    }

    /// Address of every item and every label for the given trampoline choice.
    fn layout(&self, far: &[(bool, bool)]) -> Result<(Vec<usize>, Vec<usize>), AssembleError> {
        let mut pos = Vec::with_capacity(self.items.len());
        let mut labels = vec![usize::MAX; self.labels];
        let mut at = 0;
        for (i, item) in self.items.iter().enumerate() {
            pos.push(at);
            at += match item {
                Item::Bind(l) => {
                    labels[l.0] = at;
                    0
                }
                Item::Jump { .. } => 1 + far[i].0 as usize + far[i].1 as usize,
                _ => 1,
            };
        }
        if let Some(l) = labels.iter().position(|&p| p == usize::MAX) {
            return Err(AssembleError(format!("label {l} never bound")));
        }
        Ok((pos, labels))
    }

    fn emit(&self, far: &[(bool, bool)], pos: &[usize], labels: &[usize]) -> Vec<SockFilter> {
        let insn = |code, jt, jf, k| SockFilter { code, jt, jf, k };
        let mut out = Vec::with_capacity(pos.last().map_or(0, |p| p + 3));
        for (i, item) in self.items.iter().enumerate() {
            match item {
                Item::Bind(_) => {}
                Item::Load(off) => out.push(insn(LD_W_ABS, 0, 0, *off)),
                Item::And(k) => out.push(insn(ALU_AND_K, 0, 0, *k)),
                Item::Ret(k) => out.push(insn(RET_K, 0, 0, *k)),
                Item::Jump { cond, k, jt, jf } => {
                    let next = pos[i] + 1;
                    let (far_t, far_f) = far[i];
                    let t = if far_t { 0 } else { labels[jt.0] - next };
                    let f = if far_f {
                        far_t as usize
                    } else {
                        labels[jf.0] - next
                    };
                    out.push(insn(*cond as u16, t as u8, f as u8, *k));
                    let mut tramp = next;
                    for (is_far, target) in [(far_t, jt), (far_f, jf)] {
                        if is_far {
                            out.push(insn(JMP_JA, 0, 0, (labels[target.0] - (tramp + 1)) as u32));
                            tramp += 1;
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_jumps_are_direct() {
        let mut b = Builder::default();
        let (t, f) = (b.label(), b.label());
        b.load(0);
        b.jump(Cond::Eq, 7, t, f);
        b.bind(t);
        b.ret(1);
        b.bind(f);
        b.ret(2);
        let p = b.assemble().unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!((p[1].jt, p[1].jf), (0, 1));
    }

    #[test]
    fn far_jumps_get_trampolines() {
        let mut b = Builder::default();
        let (t, f) = (b.label(), b.label());
        b.jump(Cond::Ge, 7, t, f);
        b.bind(f);
        for _ in 0..300 {
            b.ret(0);
        }
        b.bind(t);
        b.ret(1);
        let p = b.assemble().unwrap();
        assert_eq!(p.len(), 303);
        // jt -> trampoline at 1, jf -> first ret at 2
        assert_eq!((p[0].jt, p[0].jf), (0, 1));
        assert_eq!(p[1].code, JMP_JA);
        assert_eq!(1 + 1 + p[1].k as usize, 302);
        assert_eq!(p[302].k, 1);
    }

    #[test]
    fn unbound_label_is_an_error() {
        let mut b = Builder::default();
        let (l, m) = (b.label(), b.label());
        b.jump(Cond::Eq, 0, l, m);
        b.bind(m);
        b.ret(0);
        assert!(b.assemble().is_err());
    }
}
