using System.Runtime.CompilerServices;

namespace PeftWorkbench.Tests.Training;

static class NativeSetup
{
    // Before any test touches torch: xunit runs test classes in parallel in this one process, and spin-waiting
    // OpenMP teams of concurrent callers cost 10x (ThreadBudget spins when the machine looks free at start and only
    // sees other processes), so the tests sleep in barriers (PASSIVE), natively for libgomp and in the managed
    // environment for the processes they start.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init()
    {
        if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not { Length: > 0 })
        {
            setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
            Environment.SetEnvironmentVariable("OMP_WAIT_POLICY", "PASSIVE");
        }
        PeftWorkbench.Training.NativeTuning.Apply();
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    static extern int setenv(string name, string value, int overwrite);
}
