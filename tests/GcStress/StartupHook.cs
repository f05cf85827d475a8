using System;
using System.Threading;

/// <summary>
/// A .NET startup hook for stress runs: a background thread that collects and runs finalizers about every
/// millisecond (a full collection every 50th time), so that a TorchSharp object left only to its finalizer is freed
/// as soon as the GC may, including while native code on another thread still reads it. A temporary that nothing
/// references during its native call (<c>p.detach().clone()</c>, <c>t.narrow(..).view(shape)</c> outside a dispose
/// scope) then crashes the test host within seconds instead of once in many CI runs. Usage:
/// <code>
/// dotnet build -c Release tests/GcStress
/// DOTNET_STARTUP_HOOKS=$PWD/tests/GcStress/bin/Release/net10.0/GcStress.dll \
///   dotnet test tests/PeftWorkbench.Tests -c Release --no-build --filter FullyQualifiedName~Peft --blame-crash
/// </code>
/// STRESS_GC_MS sets the pause between collections (default 1). Expect some "Unknown scalar type" failures from
/// implicit Scalars that TorchSharp itself creates (e.g. the alpha of <c>Tensor + Tensor</c>); a crashed host is
/// the finding this is for.
/// </summary>
internal class StartupHook
{
    public static void Initialize()
    {
        int ms = int.TryParse(Environment.GetEnvironmentVariable("STRESS_GC_MS"), out var v) && v >= 0 ? v : 1;
        var t = new Thread(() =>
        {
            for (long i = 0; ; i++)
            {
                GC.Collect(i % 50 == 0 ? 2 : 0);
                GC.WaitForPendingFinalizers();
                Thread.Sleep(ms);
            }
        }) { IsBackground = true, Name = "gc-stress" };
        t.Start();
    }
}
