using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace PeftWorkbench.Training;

/// <summary>
/// Process-wide settings of the native runtime under libtorch, applied once, before the first torch call
/// (as this assembly's module initializer; hosts may call <see cref="Apply"/> explicitly first thing).
/// Each is skipped where the user already chose (an environment variable) or the platform differs. Between the
/// first setting and the others, <see cref="TorchNatives.PrepareLoad"/> makes TorchSharp's native library loadable
/// when the package was loaded from the NuGet cache on an older libstdc++.
/// <list type="bullet">
/// <item><b>OMP_WAIT_POLICY</b> for libtorch's OpenMP (libgomp), chosen by <see cref="ThreadBudget.ChooseWaitPolicy"/>:
/// a bounded spin when the cores are free at start (1.5-2x on mini), PASSIVE when other processes keep them busy
/// (spinning threads starve each other: at load 6-8, spin-waiting gave 69 img/s inference and 31 img/s full-FT
/// steps, PASSIVE 1041 and 175). libgomp reads the variable once, when libtorch loads. The managed
/// Environment.SetEnvironmentVariable does not reach native getenv on Unix, hence libc setenv.</item>
/// <item><b>glibc malloc keeps freed tensor memory</b> (M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB). By default
/// glibc hands every large block back to the kernel on free, so each training step maps fresh pages and faults
/// them in again: about 2,000-4,500 page faults per mini full-FT step. With these settings about 400, and a step
/// takes 15 % less CPU time and about 30 % less wall time on this 2-core machine (numbers in the issue-5 note).
/// Blocks of 32 MiB and more still come from mmap and go back on free. Opt out: PEFT_MALLOC=default.</item>
/// <item><b>MKL's Intel code path on AMD CPUs with AVX-512 or AVX2.</b> libtorch's statically linked MKL picks its slow
/// generic kernels whenever the CPU vendor is not Intel: 90-160 GFLOP/s for the ViT's matrix shapes on 2 cores
/// here, where its AVX-512 kernels reach 200-350 (OpenBLAS, which PyTorch on Debian uses, reaches about the same).
/// MKL asks one exported function, mkl_serv_intel_cpu_true, whether the CPU is Intel; this loads libtorch_cpu
/// (as TorchSharp would a moment later) and makes that function return 1, before MKL's first call. The results
/// stay float32-exact (max error against float64 unchanged in scale); only the kernels differ. Done on x64 Linux
/// with an AMD CPU that has AVX-512F, or AVX2 and FMA: on the AVX2 host of 2026-11-26 (mini, batch 256, 2 threads
/// spinning) inference went 1324-1749 -> 2144-2328 img/s and a full-FT step 504-582 -> 738-809; under PASSIVE the
/// barriers hid the difference (no gain beyond noise). Opt out: PEFT_MKL=default.</item>
/// </list>
/// </summary>
public static class NativeTuning
{
    const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;
    static int applied;

    /// <summary>What was set, for `peft info` and benchmark headers (empty until <see cref="Apply"/> ran).</summary>
    public static IReadOnlyList<string> Settings { get; private set; } = Array.Empty<string>();

#pragma warning disable CA2255 // a library module initializer on purpose: it must precede libtorch's first load
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init() => Apply();

    /// <summary>Applies the settings once per process; later calls do nothing.</summary>
    public static void Apply()
    {
        if (Interlocked.Exchange(ref applied, 1) == 1) return;
        var done = new List<string>();
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            // Native getenv: what libgomp will read (a test host or a parent may have set it with setenv).
            if (ThreadBudget.ChooseWaitPolicy(Getenv) is not (var policy, var spin)) done.Add($"OMP_WAIT_POLICY={Getenv("OMP_WAIT_POLICY")} (yours)");
            else if (setenv("OMP_WAIT_POLICY", policy, 0) == 0)
            {
                if (spin is not null) setenv("GOMP_SPINCOUNT", spin, 0);
                done.Add(policy == "PASSIVE" ? "OMP_WAIT_POLICY=PASSIVE" : $"OMP_WAIT_POLICY=ACTIVE, GOMP_SPINCOUNT={Getenv("GOMP_SPINCOUNT")} (the cores were free at start; threads adapt to load)");
            }
        }
        if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("PEFT_MALLOC") != "default")
        {
            try
            {
                // mallopt returns 1 on success; a non-glibc libc (musl) lacks it and throws EntryPointNotFoundException.
                if (mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1)
                    done.Add("malloc: mmap threshold 32 MiB, trim threshold 1 GiB");
            }
            catch (EntryPointNotFoundException) { }
        }
        // After OMP_WAIT_POLICY (libgomp reads it when libtorch loads) and before the MKL switch (which loads libtorch).
        TorchNatives.PrepareLoad();
        if (Environment.GetEnvironmentVariable("PEFT_MKL") != "default" && MklIntelPathOnAmd() is string mkl) done.Add(mkl);
        Settings = done;
    }

    static string? MklIntelPathOnAmd()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return null;
        if (!X86Base.IsSupported || !(Avx512F.IsSupported || Avx2.IsSupported && Fma.IsSupported) || CpuVendor() != "AuthenticAMD") return null;
        try
        {
            // Wherever libtorch was loaded from: a build output or the NuGet cache (.NET Interactive).
            if (TorchNatives.LibtorchDir() is not { } dir || !NativeLibrary.TryLoad(Path.Combine(dir, "libtorch_cpu.so"), out var handle)) return null;
            if (!NativeLibrary.TryGetExport(handle, "mkl_serv_intel_cpu_true", out var f)) return null;
            long page = Environment.SystemPageSize;
            var start = (nint)((long)f & ~(page - 1));
            const int Read = 1, Write = 2, Exec = 4;
            if (mprotect(start, (nuint)(2 * page), Read | Write | Exec) != 0) return null; // W^X systems refuse: keep MKL as it is
            Marshal.Copy(new byte[] { 0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3 }, 0, f, 6); // mov eax, 1; ret
            mprotect(start, (nuint)(2 * page), Read | Exec);
            return $"MKL: Intel code path on this AMD CPU ({(Avx512F.IsSupported ? "AVX-512" : "AVX2")})";
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException or EntryPointNotFoundException or IOException) { return null; }
    }

    /// <summary>The native environment's value (what libgomp and libtorch read; the managed copy can differ on Unix).</summary>
    public static string? Getenv(string name) => Marshal.PtrToStringAnsi(getenv(name));

    static string CpuVendor()
    {
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<int> regs = stackalloc int[] { ebx, edx, ecx };
        return System.Text.Encoding.ASCII.GetString(MemoryMarshal.AsBytes(regs));
    }

    [DllImport("libc", SetLastError = true)]
    static extern int setenv(string name, string value, int overwrite);

    [DllImport("libc")]
    static extern nint getenv(string name);

    [DllImport("libc")]
    static extern int mallopt(int param, int value);

    [DllImport("libc")]
    static extern int mprotect(nint addr, nuint len, int prot);
}
