using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PeftWorkbench.Training;

/// <summary>
/// Sets OMP_WAIT_POLICY=PASSIVE for libtorch's OpenMP (libgomp) unless the user set it. Measured here (2 cores,
/// load average 6-8 from other processes, mini preset, batch 64): with the default spin-waiting, 2 torch threads gave
/// 69 img/s inference and 31 img/s full-FT steps; with PASSIVE 1041 and 175 (1 thread: 836 and 263). Spinning
/// threads starve each other whenever the cores are shared (CI, parallel tests, several workers). libgomp reads the
/// variable once, when libtorch loads, so this must run before the first torch call of the process: it runs as
/// the module initializer of this assembly, and <see cref="Apply"/> lets hosts call it explicitly first thing.
/// The managed Environment.SetEnvironmentVariable does not reach native getenv on Unix, hence libc setenv.
/// </summary>
public static class OpenMpWaitPolicy
{
#pragma warning disable CA2255 // a library module initializer on purpose: it must precede libtorch's first load
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init() => Apply();

    /// <summary>True when the variable was set by this call (false: already set, or not a Unix system).</summary>
    public static bool Apply()
    {
        if (OperatingSystem.IsWindows() || Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is { Length: > 0 }) return false;
        return setenv("OMP_WAIT_POLICY", "PASSIVE", 0) == 0;
    }

    [DllImport("libc", SetLastError = true)]
    static extern int setenv(string name, string value, int overwrite);
}
