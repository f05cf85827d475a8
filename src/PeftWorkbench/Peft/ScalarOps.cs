using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>
/// A tensor times a C# number with its Scalar made explicitly and disposed right after the op. Written inline
/// (<c>delta * scale</c>) the number becomes an implicit Scalar that only its finalizer frees, and a finalizer that runs
/// during a native call makes libtorch throw (Training/MomentumSgd.cs, Vit/Layers.cs). The conversion and the ops are the
/// ones the inline form uses, so the numbers are the same bit for bit.
/// </summary>
internal static class ScalarOps
{
    /// <summary><paramref name="t"/> * <paramref name="k"/>.</summary>
    public static Tensor Times(this Tensor t, double k)
    {
        using Scalar s = k;
        return t * s;
    }

    /// <summary>(<paramref name="t"/> - 1) * <paramref name="k"/> + 1, i.e. 1 + k (t - 1): Strength on a gamma or an SSF
    /// scale (the 1 an integer Scalar, as <c>t - 1</c> makes it).</summary>
    public static Tensor TowardOne(this Tensor t, double k)
    {
        using Scalar one = 1, s = k;
        using var centred = t - one;
        using var scaled = centred * s;
        return scaled + one;
    }
}
