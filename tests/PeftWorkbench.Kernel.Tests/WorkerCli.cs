using System.Runtime.CompilerServices;

namespace PeftWorkbench.Kernel.Tests;

static class WorkerCli
{
    // Study.RunAll in the notebooks starts worker processes: make them this build's CLI (beside the tests), not the
    // `peft` launcher on PATH, which runs another checkout's build. Children (.NET Interactive's kernel) inherit it.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init()
    {
        // The kernels under test run notebooks while other tests run: they sleep in OpenMP barriers (see
        // PeftWorkbench.Training.ThreadBudget) rather than judge the machine free when they start.
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not { Length: > 0 })
            Environment.SetEnvironmentVariable("OMP_WAIT_POLICY", "PASSIVE");
        if (Environment.GetEnvironmentVariable("PEFT_CLI") is not { Length: > 0 } && File.Exists(Tools.Peft))
            Environment.SetEnvironmentVariable("PEFT_CLI", $"{Tools.Dotnet} {Tools.Peft}");
    }
}
