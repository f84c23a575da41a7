//! Is this file an agent a stock helper image can run? The plugin uploads the agent into a
//! busybox container (see [`crate::kube::upload`]), which has no C library and no dynamic
//! loader: only a statically linked Linux executable for the node's CPU runs there. This reads
//! the ELF header (with the `object` crate): the machine (`e_machine`) and the program headers,
//! where a dynamically linked program names its interpreter (`PT_INTERP`, e.g.
//! `/lib64/ld-linux-x86-64.so.2`). A static-PIE executable (`ET_DYN` without `PT_INTERP`) is
//! static too.

use object::elf::{FileHeader64, EM_AARCH64, EM_X86_64, ET_DYN, ET_EXEC, PT_INTERP};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

/// A node architecture as Kubernetes names it (`status.nodeInfo.architecture`, the
/// `kubernetes.io/arch` label, Go's `GOARCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// Every architecture an agent is built for, in the order error messages list them.
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// From Kubernetes' name (`amd64`, `arm64`); `None` for an architecture no agent is built
    /// for (`arm`, `ppc64le`, `s390x`...).
    pub fn from_kubernetes(name: &str) -> Option<Arch> {
        match name {
            "amd64" => Some(Arch::Amd64),
            "arm64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The architecture this program was built for, when an agent is built for it.
    pub fn this_program() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    fn machine(self) -> u16 {
        match self {
            Arch::Amd64 => EM_X86_64,
            Arch::Arm64 => EM_AARCH64,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The machine an ELF header names, as people know it.
fn machine_name(machine: u16) -> String {
    match machine {
        EM_X86_64 => "x86-64 (amd64)".to_owned(),
        EM_AARCH64 => "AArch64 (arm64)".to_owned(),
        object::elf::EM_386 => "i386".to_owned(),
        object::elf::EM_ARM => "32-bit ARM".to_owned(),
        object::elf::EM_PPC64 => "ppc64".to_owned(),
        object::elf::EM_S390 => "s390x".to_owned(),
        object::elf::EM_RISCV => "RISC-V".to_owned(),
        m => format!("machine {m}"),
    }
}

/// `Ok` when `data` is a statically linked Linux executable for `arch`; else why not, as a
/// phrase that follows "it is" / "it is not" (e.g. "dynamically linked (its interpreter is
/// /lib64/ld-linux-x86-64.so.2)").
pub fn check_static(data: &[u8], arch: Arch) -> Result<(), String> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) => return Err("a 32-bit ELF executable (the agent is 64-bit)".to_owned()),
        _ => return Err("not an ELF executable (a Linux program)".to_owned()),
    }
    let header = FileHeader64::<Endianness>::parse(data).map_err(|e| format!("not a valid ELF file ({e})"))?;
    let endian = header.endian().map_err(|e| format!("not a valid ELF file ({e})"))?;
    let machine = header.e_machine(endian);
    if machine != arch.machine() {
        return Err(format!(
            "built for {}, not for {} ({arch})",
            machine_name(machine),
            machine_name(arch.machine())
        ));
    }
    let kind = header.e_type(endian);
    if kind != ET_EXEC && kind != ET_DYN {
        return Err(format!("an ELF file of type {kind}, not an executable"));
    }
    let headers = header
        .program_headers(endian, data)
        .map_err(|e| format!("an ELF file whose program headers cannot be read ({e})"))?;
    if kind == ET_DYN && headers.is_empty() {
        return Err("a shared library, not an executable".to_owned());
    }
    for ph in headers {
        if ph.p_type(endian) == PT_INTERP {
            let interp = ph
                .data(endian, data)
                .ok()
                .map(|d| String::from_utf8_lossy(d.split(|b| *b == 0).next().unwrap_or_default()).into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unreadable".to_owned());
            return Err(format!(
                "dynamically linked (its interpreter is {interp}), and the helper image has no C library"
            ));
        }
    }
    Ok(())
}

/// A minimal little-endian ELF64 file: the header and `phdrs` program headers of the given
/// types; a PT_INTERP's data (the interpreter's path) follows them.
#[cfg(test)]
pub(crate) fn test_elf(kind: u16, machine: u16, phdrs: &[u32]) -> Vec<u8> {
    let interp = b"/lib/ld-musl-x86_64.so.1\0";
    let phoff = 64u64;
    let data_off = phoff + 56 * phdrs.len() as u64;
    let mut v = Vec::new();
    v.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(&machine.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes()); // e_version
    v.extend_from_slice(&0x40_1000u64.to_le_bytes()); // e_entry
    v.extend_from_slice(&phoff.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    v.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    v.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    v.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    v.extend_from_slice(&(phdrs.len() as u16).to_le_bytes());
    v.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    v.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    v.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    assert_eq!(v.len(), 64);
    for &t in phdrs {
        v.extend_from_slice(&t.to_le_bytes());
        v.extend_from_slice(&4u32.to_le_bytes()); // p_flags
        let (off, size) = if t == PT_INTERP {
            (data_off, interp.len() as u64)
        } else {
            (0, 0)
        };
        for x in [off, 0, 0, size, size, 1] {
            v.extend_from_slice(&x.to_le_bytes());
        }
    }
    v.extend_from_slice(interp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(kind: u16, machine: u16, phdrs: &[u32]) -> Vec<u8> {
        test_elf(kind, machine, phdrs)
    }

    const PT_LOAD: u32 = object::elf::PT_LOAD;

    #[test]
    fn static_executables_of_the_right_machine_pass() {
        assert_eq!(check_static(&elf(ET_EXEC, EM_X86_64, &[PT_LOAD]), Arch::Amd64), Ok(()));
        // static-pie
        assert_eq!(check_static(&elf(ET_DYN, EM_AARCH64, &[PT_LOAD]), Arch::Arm64), Ok(()));
    }

    #[test]
    fn each_refusal_says_why() {
        let dynamic = check_static(&elf(ET_DYN, EM_X86_64, &[PT_LOAD, PT_INTERP]), Arch::Amd64).unwrap_err();
        assert!(
            dynamic.contains("dynamically linked (its interpreter is /lib/ld-musl-x86_64.so.1)"),
            "{dynamic}"
        );
        let wrong = check_static(&elf(ET_EXEC, EM_X86_64, &[PT_LOAD]), Arch::Arm64).unwrap_err();
        assert_eq!(wrong, "built for x86-64 (amd64), not for AArch64 (arm64) (arm64)");
        let object_file = check_static(&elf(1, EM_X86_64, &[]), Arch::Amd64).unwrap_err();
        assert!(object_file.contains("not an executable"), "{object_file}");
        assert!(check_static(b"#!/bin/sh\necho hi\n", Arch::Amd64)
            .unwrap_err()
            .contains("not an ELF executable"));
        let mut elf32 = elf(ET_EXEC, EM_X86_64, &[]);
        elf32[4] = 1;
        assert!(check_static(&elf32, Arch::Amd64).unwrap_err().contains("32-bit"));
    }

    /// A real file: this test program, as the linker made it (dynamic on the gnu target,
    /// static on musl), parsed to the end of its program headers.
    #[test]
    fn this_test_program_reads_as_the_linker_made_it() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let Some(arch) = Arch::this_program() else { return };
        if let Err(e) = check_static(&me, arch) {
            assert!(e.starts_with("dynamically linked (its interpreter is /"), "{e}");
        }
    }
}
