// Why this exists: TorchSharp 0.107.0's libLibTorchSharp.so was linked against GCC 13's libstdc++
// and records a need for GLIBCXX_3.4.32 for exactly one symbol (std::ios_base_library_init), a marker
// that GCC 13 headers reference but never call. On systems whose libstdc++ stops earlier (Debian 12:
// GLIBCXX_3.4.30) the loader then refuses the library. Marking that one version need as weak
// (VER_FLG_WEAK in the .gnu.version_r entry) lets the loader continue. Systems whose libstdc++ has the
// version are left untouched.
//
// This file compiles twice: as an MSBuild inline task (RoslynCodeTaskFactory, see Directory.Build.targets)
// and into the library (with NO_MSBUILD defined), whose TorchNatives makes the same edit on a copy of the
// NuGet cache's libLibTorchSharp.so for hosts that load the package from there (.NET Interactive).
// The tests reach it through the library.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace PeftWorkbench.Build
{
    /// <summary>Reads and edits the GNU symbol-version sections of a 64-bit little-endian ELF file.</summary>
    internal static class ElfVersions
    {
        const uint ShtGnuVerdef = 0x6ffffffd, ShtGnuVerneed = 0x6ffffffe;
        public const ushort VerFlgWeak = 0x2;

        struct Section { public uint Type, Link, Info; public long Offset, Size; }

        /// <summary>One version requirement: the library it is needed from, the version name, its flags and where the flags live.</summary>
        public sealed class Need
        {
            public string File = "", Version = "";
            public ushort Flags;
            public long FlagsOffset;
            public bool IsWeak => (Flags & VerFlgWeak) != 0;
        }

        static Section[] ReadSections(byte[] b, string path)
        {
            if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
                throw new InvalidDataException(path + ": not an ELF file");
            if (b[4] != 2 || b[5] != 1)
                throw new InvalidDataException(path + ": only 64-bit little-endian ELF is supported");
            long shoff = (long)BitConverter.ToUInt64(b, 0x28);
            int shentsize = BitConverter.ToUInt16(b, 0x3A), shnum = BitConverter.ToUInt16(b, 0x3C);
            if (shentsize < 64 || shoff < 0 || shoff + (long)shentsize * shnum > b.Length)
                throw new InvalidDataException(path + ": section header table lies outside the file");
            var s = new Section[shnum];
            for (int i = 0; i < shnum; i++)
            {
                long o = shoff + (long)i * shentsize;
                s[i] = new Section
                {
                    Type = BitConverter.ToUInt32(b, (int)o + 4),
                    Offset = (long)BitConverter.ToUInt64(b, (int)o + 24),
                    Size = (long)BitConverter.ToUInt64(b, (int)o + 32),
                    Link = BitConverter.ToUInt32(b, (int)o + 40),
                    Info = BitConverter.ToUInt32(b, (int)o + 44),
                };
            }
            return s;
        }

        static string Str(byte[] b, Section[] s, uint strtab, uint offset, string path)
        {
            if (strtab >= s.Length) throw new InvalidDataException(path + ": bad string table index");
            long start = s[strtab].Offset + offset;
            if (start < 0 || start >= b.Length) throw new InvalidDataException(path + ": string offset outside the file");
            long end = start;
            while (end < b.Length && b[end] != 0) end++;
            return Encoding.ASCII.GetString(b, (int)start, (int)(end - start));
        }

        static void Check(long offset, int size, byte[] b, string path)
        {
            if (offset < 0 || offset + size > b.Length) throw new InvalidDataException(path + ": version entry outside the file");
        }

        /// <summary>Every version need (.gnu.version_r) of the file.</summary>
        public static List<Need> ReadNeeds(byte[] b, string path)
        {
            var s = ReadSections(b, path);
            var needs = new List<Need>();
            foreach (var sec in s)
            {
                if (sec.Type != ShtGnuVerneed) continue;
                long vn = sec.Offset;
                for (uint i = 0; i < sec.Info; i++)
                {
                    Check(vn, 16, b, path);
                    int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                    string file = Str(b, s, sec.Link, BitConverter.ToUInt32(b, (int)vn + 4), path);
                    long aux = vn + BitConverter.ToUInt32(b, (int)vn + 8);
                    for (int j = 0; j < cnt; j++)
                    {
                        Check(aux, 16, b, path);
                        needs.Add(new Need
                        {
                            File = file,
                            Flags = BitConverter.ToUInt16(b, (int)aux + 4),
                            FlagsOffset = aux + 4,
                            Version = Str(b, s, sec.Link, BitConverter.ToUInt32(b, (int)aux + 8), path),
                        });
                        aux += BitConverter.ToUInt32(b, (int)aux + 12);
                    }
                    uint next = BitConverter.ToUInt32(b, (int)vn + 12);
                    if (next == 0) break;
                    vn += next;
                }
            }
            return needs;
        }

        /// <summary>Every version the file defines (.gnu.version_d), e.g. GLIBCXX_3.4.30 for libstdc++.</summary>
        public static List<string> ReadDefinitions(byte[] b, string path)
        {
            var s = ReadSections(b, path);
            var defs = new List<string>();
            foreach (var sec in s)
            {
                if (sec.Type != ShtGnuVerdef) continue;
                long vd = sec.Offset;
                for (uint i = 0; i < sec.Info; i++)
                {
                    Check(vd, 20, b, path);
                    long aux = vd + BitConverter.ToUInt32(b, (int)vd + 12);
                    Check(aux, 8, b, path);
                    defs.Add(Str(b, s, sec.Link, BitConverter.ToUInt32(b, (int)aux), path));
                    uint next = BitConverter.ToUInt32(b, (int)vd + 16);
                    if (next == 0) break;
                    vd += next;
                }
            }
            return defs;
        }

        /// <summary>
        /// The decision: null when the file's need for <paramref name="version"/> must be marked weak (the system
        /// lacks the version and the need is strong), else the reason to leave the file alone.
        /// </summary>
        public static string? WhyLeftAlone(byte[] b, string path, string version, ICollection<string> systemVersions, out Need? hit)
        {
            hit = null;
            if (systemVersions.Contains(version)) return path + ": system libstdc++ provides " + version + "; left unchanged";
            foreach (var n in ReadNeeds(b, path)) if (n.Version == version) hit = n;
            if (hit == null) return path + ": needs no " + version + "; left unchanged";
            if (hit.IsWeak) return path + ": " + version + " need already weak";
            return null;
        }

        /// <summary>
        /// Marks the need for <paramref name="version"/> weak when <paramref name="systemVersions"/> lacks it.
        /// Returns a line saying what was done (or why nothing was), for the build log.
        /// </summary>
        public static string WeakenIfMissing(string path, string version, ICollection<string> systemVersions)
        {
            byte[] b = systemVersions.Contains(version) ? Array.Empty<byte>() : File.ReadAllBytes(path);
            string? why = WhyLeftAlone(b, path, version, systemVersions, out var hit);
            if (why != null) return why;
            ushort flags = (ushort)(hit!.Flags | VerFlgWeak);
            b[hit.FlagsOffset] = (byte)(flags & 0xff);
            b[hit.FlagsOffset + 1] = (byte)(flags >> 8);
            string tmp = path + ".weak-tmp";
            File.WriteAllBytes(tmp, b);
            File.Copy(tmp, path, true);
            File.Delete(tmp);
            return path + ": marked the " + version + " need weak (system libstdc++ lacks it)";
        }

        /// <summary>The versions the system's libstdc++ defines, or null where none is found (e.g. Windows, macOS).</summary>
        public static List<string>? SystemLibstdcxxVersions()
        {
            string[] candidates =
            {
                "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
                "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
            };
            foreach (var c in candidates)
                if (File.Exists(c)) return ReadDefinitions(File.ReadAllBytes(c), c);
            return null;
        }
    }

#if !NO_MSBUILD
    /// <summary>MSBuild task: weakens the GLIBCXX_3.4.32 need of each given libLibTorchSharp.so where the system lacks it.</summary>
    public class WeakenGlibcxxNeed : Microsoft.Build.Utilities.Task
    {
        public string[] Files { get; set; } = Array.Empty<string>();
        public string Version { get; set; } = "GLIBCXX_3.4.32";

        public override bool Execute()
        {
            var system = ElfVersions.SystemLibstdcxxVersions();
            if (system == null) return true;
            foreach (var f in Files)
            {
                if (!File.Exists(f)) continue;
                try { Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, ElfVersions.WeakenIfMissing(f, Version, system)); }
                catch (Exception e) { Log.LogWarning("could not patch " + f + ": " + e.Message); }
            }
            return true;
        }
    }
#endif
}
