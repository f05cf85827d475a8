using System.Reflection;
using System.Runtime.InteropServices;
using PeftWorkbench.Build;

namespace PeftWorkbench.Training;

/// <summary>
/// Where libtorch's native libraries are for this process, and making TorchSharp's native library load where the
/// system's libstdc++ is older than the one it was built against.
/// <para>A build output holds TorchSharp.dll, libLibTorchSharp.so (patched by the build, see
/// build/GlibcxxWeakNeed.cs) and libtorch side by side. A host that loads the package from the NuGet cache
/// (.NET Interactive's <c>#r "nuget: PeftWorkbench"</c>) finds each package in its own folder there, unpatched. Then,
/// before any torch call, <see cref="PrepareLoad"/> copies libLibTorchSharp.so into the data cache, marks its one
/// GLIBCXX_3.4.32 need weak there (the same ELF edit as the build's), and loads libtorch_cpu, libtorch and that copy
/// by full path; TorchSharp's own load then finds the copy by its soname. Where libstdc++ has the version (Debian 13,
/// Ubuntu 24.04), or off Linux, nothing is done.</para>
/// </summary>
public static class TorchNatives
{
    public const string GlibcxxVersion = "GLIBCXX_3.4.32";

    /// <summary>The libtorch-cpu package version this library was built against (from Directory.Packages.props).</summary>
    public static string LibtorchVersion =>
        typeof(TorchNatives).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "LibtorchVersion")?.Value ?? "";

    static string TorchSharpDir => Path.GetDirectoryName(typeof(TorchSharp.torch).Assembly.Location) ?? "";

    /// <summary>The TorchSharp package folder when TorchSharp.dll was loaded from a NuGet cache (…/torchsharp/VERSION/lib/TFM/), else null.</summary>
    static string? TorchSharpPackageDir()
    {
        var lib = Directory.GetParent(TorchSharpDir);
        return lib?.Name == "lib" && lib.Parent is { } pkg && pkg.Parent?.Name.Equals("torchsharp", StringComparison.OrdinalIgnoreCase) == true
            ? pkg.FullName : null;
    }

    /// <summary>The folder holding libtorch_cpu.so: beside TorchSharp.dll (build outputs), under its runtimes/linux-x64/native,
    /// or the NuGet cache's libtorch-cpu-linux-x64 package next to TorchSharp's; null if none (not Linux x64, or no natives).</summary>
    public static string? LibtorchDir()
    {
        var candidates = new List<string> { TorchSharpDir, Path.Combine(TorchSharpDir, "runtimes", "linux-x64", "native") };
        if (TorchSharpPackageDir() is { } pkg && LibtorchVersion is { Length: > 0 } v)
            candidates.Add(Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(pkg)!)!, "libtorch-cpu-linux-x64", v, "runtimes", "linux-x64", "native"));
        return candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "libtorch_cpu.so")));
    }

    static int prepared;

    /// <summary>What <see cref="PrepareLoad"/> did, for `Workbench.Info()`; empty until it ran.</summary>
    public static string Status { get; private set; } = "";

    /// <summary>Makes TorchSharp's native load work for a process that loaded TorchSharp from the NuGet cache; once per
    /// process, before the first torch call. Returns what it did (or why nothing), never throws.</summary>
    public static string PrepareLoad()
    {
        if (Interlocked.Exchange(ref prepared, 1) == 1) return Status;
        try { Status = Prepare(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or DllNotFoundException or BadImageFormatException)
        {
            Status = "native load not prepared: " + e.Message;
        }
        return Status;
    }

    static string Prepare()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return "not needed (not Linux x64)";
        if (TorchSharpPackageDir() is not { } pkg) return "not needed (natives beside TorchSharp.dll)";
        var original = Path.Combine(pkg, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (!File.Exists(original)) return "not prepared: " + original + " is missing";
        var system = ElfVersions.SystemLibstdcxxVersions();
        if (system is null) return "not needed (no system libstdc++ found)";
        var why = ElfVersions.WhyLeftAlone(File.ReadAllBytes(original), original, GlibcxxVersion, system, out _);
        if (why is not null) return "not needed: " + why;
        if (LibtorchDir() is not { } libtorch) return "not prepared: libtorch-cpu-linux-x64 " + LibtorchVersion + " not found in the NuGet cache";

        // The copy lives in the data cache, one folder per TorchSharp version; written atomically so concurrent kernels agree.
        var version = Path.GetFileName(pkg);
        var dir = Path.Combine(Workbench.DataDir, "natives", "torchsharp-" + version);
        var copy = Path.Combine(dir, "libLibTorchSharp.so");
        if (!File.Exists(copy) || ElfVersions.WhyLeftAlone(File.ReadAllBytes(copy), copy, GlibcxxVersion, system, out _) is null)
        {
            Checkpoints.AtomicFile.Write(copy, fs => { using var from = File.OpenRead(original); from.CopyTo(fs); },
                tmp => ElfVersions.WeakenIfMissing(tmp, GlibcxxVersion, system));
        }
        foreach (var lib in new[] { Path.Combine(libtorch, "libtorch_cpu.so"), Path.Combine(libtorch, "libtorch.so"), copy })
            NativeLibrary.Load(lib);
        return $"libLibTorchSharp.so from {copy} (its {GlibcxxVersion} need marked weak; libstdc++ here lacks it)";
    }
}
