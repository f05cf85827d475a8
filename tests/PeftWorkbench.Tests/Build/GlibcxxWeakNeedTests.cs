using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using PeftWorkbench.Build;
using TorchSharp;

namespace PeftWorkbench.Tests.Build;

public class GlibcxxWeakNeedTests
{
    /// <summary>
    /// A minimal 64-bit little-endian ELF, written field by field from the ELF and GNU symbol-versioning specs:
    /// the header, a .dynstr string table, a .gnu.version_r section with one Verneed (libstdc++.so.6) and two
    /// Vernaux entries (GLIBCXX_3.4.30, GLIBCXX_3.4.32), then the section header table (null, .dynstr, .gnu.version_r).
    /// Returns the bytes and the file offsets of the two Vernaux flag fields.
    /// </summary>
    static (byte[] Bytes, int Flags30, int Flags32) MinimalElf()
    {
        var strtab = Encoding.ASCII.GetBytes("\0libstdc++.so.6\0GLIBCXX_3.4.30\0GLIBCXX_3.4.32\0");
        uint fileName = 1, v30 = 16, v32 = 31;
        const int strOff = 64, verOff = 128, shOff = 192, shNum = 3;
        var b = new byte[shOff + 64 * shNum];
        // ELF header
        new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F', 2 /*64-bit*/, 1 /*little-endian*/, 1 /*version*/ }.CopyTo(b, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(0x10), 3);       // e_type ET_DYN
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(0x12), 0x3e);    // e_machine x86-64
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(0x14), 1);       // e_version
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(0x28), shOff);   // e_shoff
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(0x34), 64);      // e_ehsize
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(0x3a), 64);      // e_shentsize
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(0x3c), shNum);   // e_shnum
        strtab.CopyTo(b, strOff);
        // Verneed: vn_version, vn_cnt, vn_file, vn_aux, vn_next
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(verOff), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(verOff + 2), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(verOff + 4), fileName);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(verOff + 8), 16);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(verOff + 12), 0);
        // Vernaux x2: vna_hash, vna_flags, vna_other, vna_name, vna_next
        void Aux(int at, uint hash, ushort other, uint name, uint next)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), hash);
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(at + 4), 0);
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(at + 6), other);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at + 8), name);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at + 12), next);
        }
        Aux(verOff + 16, 0x08922970, 2, v30, 16);
        Aux(verOff + 32, 0x08922972, 3, v32, 0);
        // Section headers: sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize
        void Section(int index, uint type, long offset, long size, uint link, uint info)
        {
            int at = shOff + 64 * index;
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at + 4), type);
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at + 24), (ulong)offset);
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at + 32), (ulong)size);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at + 40), link);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at + 44), info);
        }
        Section(1, 3 /*SHT_STRTAB*/, strOff, strtab.Length, 0, 0);
        Section(2, 0x6ffffffe /*SHT_GNU_verneed*/, verOff, 48, 1, 1);
        return (b, verOff + 16 + 4, verOff + 32 + 4);
    }

    static string Write(byte[] bytes)
    {
        var path = Path.Combine(Path.GetTempPath(), $"elf-test-{Guid.NewGuid():N}.so");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void ReadsBothVersionNeeds()
    {
        var (bytes, _, _) = MinimalElf();
        var needs = ElfVersions.ReadNeeds(bytes, "mem.so");
        Assert.Equal(new[] { "GLIBCXX_3.4.30", "GLIBCXX_3.4.32" }, needs.Select(n => n.Version));
        Assert.All(needs, n => Assert.Equal("libstdc++.so.6", n.File));
        Assert.All(needs, n => Assert.False(n.IsWeak));
    }

    [Fact]
    public void MarksOnlyTheMissingVersionWeakAndChangesNothingElse()
    {
        var (original, flags30, flags32) = MinimalElf();
        var path = Write(original);
        try
        {
            var log = ElfVersions.WeakenIfMissing(path, "GLIBCXX_3.4.32", new[] { "GLIBCXX_3.4.29", "GLIBCXX_3.4.30" });
            Assert.Contains("marked", log);
            var after = File.ReadAllBytes(path);
            Assert.Equal(original.Length, after.Length);
            var changed = Enumerable.Range(0, after.Length).Where(i => after[i] != original[i]).ToArray();
            Assert.Equal(new[] { flags32 }, changed);  // the low byte of that one vna_flags field
            Assert.Equal(ElfVersions.VerFlgWeak, BinaryPrimitives.ReadUInt16LittleEndian(after.AsSpan(flags32)));
            Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(after.AsSpan(flags30)));
            var needs = ElfVersions.ReadNeeds(after, path);
            Assert.True(needs.Single(n => n.Version == "GLIBCXX_3.4.32").IsWeak);
            Assert.False(needs.Single(n => n.Version == "GLIBCXX_3.4.30").IsWeak);

            // Running again (every build does) changes nothing more.
            Assert.Contains("already weak", ElfVersions.WeakenIfMissing(path, "GLIBCXX_3.4.32", new[] { "GLIBCXX_3.4.30" }));
            Assert.Equal(after, File.ReadAllBytes(path));
            Assert.False(File.Exists(path + ".weak-tmp"));
        }
        finally { File.Delete(path); }
    }

    /// <summary>The decision TorchNatives makes for a package loaded from the NuGet cache (.NET Interactive): patch a copy
    /// only where the system's libstdc++ lacks the version and the need is still strong.</summary>
    [Fact]
    public void DecidesToPatchOnlyAStrongNeedTheSystemCannotMeet()
    {
        var (bytes, _, flags32) = MinimalElf();
        var debian12 = new[] { "GLIBCXX_3.4.29", "GLIBCXX_3.4.30" };
        Assert.Null(ElfVersions.WhyLeftAlone(bytes, "a.so", "GLIBCXX_3.4.32", debian12, out var hit));
        Assert.Equal("GLIBCXX_3.4.32", hit!.Version);
        Assert.Contains("provides", ElfVersions.WhyLeftAlone(bytes, "a.so", "GLIBCXX_3.4.32", debian12.Append("GLIBCXX_3.4.32").ToArray(), out _));
        Assert.Contains("needs no", ElfVersions.WhyLeftAlone(bytes, "a.so", "GLIBCXX_3.4.99", debian12, out _));
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(flags32), ElfVersions.VerFlgWeak);
        Assert.Contains("already weak", ElfVersions.WhyLeftAlone(bytes, "a.so", "GLIBCXX_3.4.32", debian12, out _));
    }

    /// <summary>Where the build output holds the natives (this test run), nothing is patched or preloaded from the cache.</summary>
    [Fact]
    public void NativeLoadIsLeftAloneBesideABuildOutput()
    {
        torch.ones(1).Dispose();
        Assert.Equal("not needed (natives beside TorchSharp.dll)", PeftWorkbench.Training.TorchNatives.Status);
        Assert.Equal(AppContext.BaseDirectory.TrimEnd('/'), PeftWorkbench.Training.TorchNatives.LibtorchDir()?.TrimEnd('/'));
    }

    [Fact]
    public void LeavesTheFileAloneWhenTheSystemHasTheVersion()
    {
        var (original, _, _) = MinimalElf();
        var path = Write(original);
        try
        {
            var log = ElfVersions.WeakenIfMissing(path, "GLIBCXX_3.4.32", new[] { "GLIBCXX_3.4.30", "GLIBCXX_3.4.32" });
            Assert.Contains("left unchanged", log);
            Assert.Equal(original, File.ReadAllBytes(path));
            // A version the file does not need: also unchanged.
            Assert.Contains("needs no", ElfVersions.WeakenIfMissing(path, "GLIBCXX_3.4.99", new[] { "GLIBCXX_3.4.30" }));
            Assert.Equal(original, File.ReadAllBytes(path));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void NonElfAndDamagedInputAreClearErrors()
    {
        var path = Write(Encoding.ASCII.GetBytes(new string('x', 200)));
        try
        {
            var e = Assert.Throws<InvalidDataException>(() => ElfVersions.WeakenIfMissing(path, "GLIBCXX_3.4.32", new[] { "GLIBCXX_3.4.30" }));
            Assert.Contains(path, e.Message);
            Assert.Contains("not an ELF file", e.Message);

            var (bytes, _, _) = MinimalElf();
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(0x28), 1_000_000);  // section headers past the end
            File.WriteAllBytes(path, bytes);
            e = Assert.Throws<InvalidDataException>(() => ElfVersions.WeakenIfMissing(path, "GLIBCXX_3.4.32", new[] { "GLIBCXX_3.4.30" }));
            Assert.Contains("outside the file", e.Message);

            bytes = MinimalElf().Bytes;
            bytes[4] = 1;  // 32-bit class
            File.WriteAllBytes(path, bytes);
            e = Assert.Throws<InvalidDataException>(() => ElfVersions.WeakenIfMissing(path, "GLIBCXX_3.4.32", new[] { "GLIBCXX_3.4.30" }));
            Assert.Contains("64-bit", e.Message);
        }
        finally { File.Delete(path); }
    }

    /// <summary>The build's own output: TorchSharp's native library either needs GLIBCXX_3.4.32 weakly or the system has it.</summary>
    [Fact]
    public void BuildOutputLoadsOnThisSystem()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return;  // the fix is Linux-only
        var so = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        Assert.True(File.Exists(so), $"{so} missing from the test output");
        var system = ElfVersions.SystemLibstdcxxVersions();
        Assert.NotNull(system);
        Assert.Contains("GLIBCXX_3.4", system);
        var need = ElfVersions.ReadNeeds(File.ReadAllBytes(so), so).SingleOrDefault(n => n.Version == "GLIBCXX_3.4.32");
        if (need is not null)
            Assert.True(need.IsWeak || system.Contains("GLIBCXX_3.4.32"),
                $"{so} needs GLIBCXX_3.4.32 strongly and the system libstdc++ lacks it: the build step did not run");
        // And the library does load: a first call into libtorch.
        using var t = torch.ones(2, 2);
        Assert.Equal(4f, t.sum().item<float>());
    }
}
