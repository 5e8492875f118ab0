//! The seccomp filter every sandboxed program runs under, as a classic BPF program that
//! bubblewrap loads (`--seccomp FD`) right before it executes the program.
//!
//! It is a deny list on top of what the namespaces already prevent: system calls that reach
//! kernel attack surface a build or test never needs (keyrings, BPF, perf, kernel modules,
//! kexec, io_uring), tracing of other processes, every way to change the mount table or
//! enter and create namespaces, and the two terminal ioctls that inject input (TIOCSTI) or
//! read the console (TIOCLINUX). Denied calls fail with EPERM, so programs probing for a
//! feature fall back instead of dying. `clone3` fails with ENOSYS because its flags live in
//! memory a filter cannot read; libc then falls back to `clone`, whose namespace flags are
//! checked. Other architectures' system call ABIs (i386 and x32 on x86-64) are denied whole.

/// `struct sock_filter` opcodes used here.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// Filter results.
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of `args[0]` and `args[1]` (little-endian).
const OFF_ARG0_LO: u32 = 16;
const OFF_ARG1_LO: u32 = 24;

/// `AUDIT_ARCH_*` of the architecture this crate is built for.
#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xC000_00B7;

/// Bit marking the x32 ABI in system call numbers on x86-64.
#[cfg(target_arch = "x86_64")]
const X32_BIT: Option<u32> = Some(0x4000_0000);
#[cfg(target_arch = "aarch64")]
const X32_BIT: Option<u32> = None;

/// Namespace flags `clone` may not carry (CLONE_NEWNS .. CLONE_NEWNET, CLONE_NEWTIME).
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | 0x80) as u32;

/// System calls denied with EPERM on every supported architecture.
const DENIED: &[libc::c_long] = &[
    // Tracing and reading other processes' memory.
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    // Kernel keyrings.
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    // BPF, perf, userfaultfd, io_uring: large attack surface, unused by builds and tests.
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    // The mount table and namespaces.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    // The kernel itself, the machine and its clock.
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_syslog,
    libc::SYS_quotactl,
    libc::SYS_quotactl_fd,
    libc::SYS_open_by_handle_at,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_vhangup,
];

/// x86-only calls: raw port I/O and obsolete module calls.
#[cfg(target_arch = "x86_64")]
const DENIED_ARCH: &[libc::c_long] = &[libc::SYS_iopl, libc::SYS_ioperm, libc::SYS_lookup_dcookie];
#[cfg(target_arch = "aarch64")]
const DENIED_ARCH: &[libc::c_long] = &[];

/// Terminal ioctls denied with EPERM.
const DENIED_IOCTLS: &[u32] = &[libc::TIOCSTI as u32, libc::TIOCLINUX as u32];

/// Where a jump goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Next,
    Eperm,
    Enosys,
    CheckClone,
    CheckIoctl,
}

/// One instruction before jump targets are resolved.
enum Insn {
    Load(u32),
    Jump(u16, u32, Label, Label),
    Ret(u32),
    Mark(Label),
}

/// The filter as the bytes of a `struct sock_filter` array in native byte order (`None`
/// only if a jump could not be encoded, which the unit test rules out).
pub(crate) fn program() -> Option<Vec<u8>> {
    use Insn::{Jump, Load, Mark, Ret};
    use Label::{CheckClone, CheckIoctl, Enosys, Eperm, Next};
    let mut p = vec![Load(OFF_ARCH), Jump(JEQ_K, ARCH, Next, Eperm), Load(OFF_NR)];
    if let Some(bit) = X32_BIT {
        p.push(Jump(JGE_K, bit, Eperm, Next));
    }
    for nr in DENIED.iter().chain(DENIED_ARCH) {
        p.push(Jump(JEQ_K, *nr as u32, Eperm, Next));
    }
    p.push(Jump(JEQ_K, libc::SYS_clone3 as u32, Enosys, Next));
    p.push(Jump(JEQ_K, libc::SYS_clone as u32, CheckClone, Next));
    p.push(Jump(JEQ_K, libc::SYS_ioctl as u32, CheckIoctl, Next));
    p.push(Ret(RET_ALLOW));
    p.push(Mark(CheckClone));
    p.push(Load(OFF_ARG0_LO));
    p.push(Jump(JSET_K, CLONE_NS_FLAGS, Eperm, Next));
    p.push(Ret(RET_ALLOW));
    p.push(Mark(CheckIoctl));
    p.push(Load(OFF_ARG1_LO));
    for cmd in DENIED_IOCTLS {
        p.push(Jump(JEQ_K, *cmd, Eperm, Next));
    }
    p.push(Ret(RET_ALLOW));
    p.push(Mark(Eperm));
    p.push(Ret(RET_ERRNO | libc::EPERM as u32));
    p.push(Mark(Enosys));
    p.push(Ret(RET_ERRNO | libc::ENOSYS as u32));
    assemble(&p)
}

/// Resolves labels to relative jump offsets and encodes the instructions; `None` when a
/// jump goes backwards or further than 255 instructions, which classic BPF cannot express.
fn assemble(insns: &[Insn]) -> Option<Vec<u8>> {
    let mut at = Vec::new();
    let mut index = 0usize;
    for insn in insns {
        match insn {
            Insn::Mark(label) => at.push((*label, index)),
            _ => index += 1,
        }
    }
    let target = |label: Label, here: usize| -> Option<u8> {
        if label == Label::Next {
            return Some(0);
        }
        let (_, to) = at.iter().find(|(l, _)| *l == label).copied()?;
        u8::try_from(to.checked_sub(here + 1)?).ok()
    };
    let mut out = Vec::with_capacity(index * 8);
    let mut here = 0usize;
    for insn in insns {
        let (code, jt, jf, k) = match insn {
            Insn::Mark(_) => continue,
            Insn::Load(offset) => (LD_W_ABS, 0, 0, *offset),
            Insn::Ret(value) => (RET_K, 0, 0, *value),
            Insn::Jump(code, k, yes, no) => (*code, target(*yes, here)?, target(*no, here)?, *k),
        };
        out.extend_from_slice(&code.to_ne_bytes());
        out.push(jt);
        out.push(jf);
        out.extend_from_slice(&k.to_ne_bytes());
        here += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let prog = program().expect("every jump encodes");
        assert_eq!(prog.len() % 8, 0);
        let n = prog.len() / 8;
        assert!(n < 200, "{n} instructions");
        for (i, ins) in prog.chunks(8).enumerate() {
            let code = u16::from_ne_bytes([ins[0], ins[1]]);
            if code & 0x07 == 0x05 {
                assert!(i + 1 + (ins[2] as usize) < n && i + 1 + (ins[3] as usize) < n);
            }
        }
        let last = &prog[prog.len() - 8..];
        assert_eq!(u16::from_ne_bytes([last[0], last[1]]), RET_K);
    }
}
