using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>
/// Chained TorchSharp calls outside a dispose scope (<c>t.detach().clone()</c>) leave the intermediate tensor to its
/// finalizer, and nothing references it once its handle is passed to the native call: a GC on any thread can then
/// finalize it while libtorch still reads it, which segfaults in libtorch_cpu.so (seen as a crashed test host under
/// load). The helpers here hold each intermediate in a variable and dispose it after the call that reads it.
/// </summary>
internal static class Temporaries
{
    /// <summary><c>t.detach().clone()</c> with the detached alias kept alive through the clone.</summary>
    public static Tensor DetachedClone(this Tensor t)
    {
        using var detached = t.detach();
        return detached.clone();
    }
}
