using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Vit;

/// <summary>
/// A truncated normal fill with PyTorch's semantics (nn.init.trunc_normal_: inverse-CDF sampling within
/// [a, b], absolute bounds). TorchSharp 0.107's own nn.init.trunc_normal_ is wrong: its native code
/// multiplies by the mean and adds the std (THSInit_trunc_normal_), so with mean 0 every value equals
/// the std (a ViT whose weights are all 0.02). Draws from <c>generator</c>, or the global generator.
/// </summary>
public static class TruncNormal
{
    public static Tensor Fill_(Tensor tensor, double mean = 0, double std = 1, double a = -2, double b = 2, Generator? generator = null)
    {
        if (!(std > 0)) throw new ArgumentOutOfRangeException(nameof(std), std, "std must be positive");
        if (!(a < b)) throw new ArgumentException($"truncation bounds must satisfy a < b, got [{a}, {b}]");
        static double Cdf(double x) => (1 + Erf(x / Math.Sqrt(2))) / 2;
        double l = Cdf((a - mean) / std), u = Cdf((b - mean) / std);
        using var _ = torch.no_grad();
        // The comparison masks are as large as the tensor (a byte per element): free them now, not at some GC.
        using var scope = torch.NewDisposeScope();
        // Explicit Scalars, disposed after the ops: an implicit one is freed by its finalizer, which can run during the
        // native call ("Unknown scalar type"; see Training/MomentumSgd.cs).
        using Scalar lo = a, hi = b;
        if (u - l > 0.5)
        {
            // Rejection: draw normals and redraw the few outside [a, b]. Exact, and one cheap pass when the
            // bounds are far out (as for std 0.02 within +-2).
            tensor.normal_(mean, std, generator);
            for (int round = 0; round < 64; round++)
            {
                using var outside = tensor.lt(lo).logical_or_(tensor.gt(hi));
                if (!outside.any().item<bool>()) return tensor;
                using var fresh = torch.empty_like(tensor).normal_(mean, std, generator);
                tensor.copy_(torch.where(outside, fresh, tensor));
            }
        }
        // Inverse CDF (PyTorch's way), for bounds that cut deep into the distribution.
        tensor.uniform_(2 * l - 1, 2 * u - 1, generator);
        tensor.erfinv_();
        using (Scalar scale = std * Math.Sqrt(2), shift = mean)
            tensor.mul_(scale).add_(shift);
        tensor.clamp_(lo, hi);
        return tensor;
    }

    /// <summary>The error function by the classic Chebyshev-fitted erfc approximation (|error| &lt; 1.2e-7: ample for truncation probabilities).</summary>
    static double Erf(double x)
    {
        double z = Math.Abs(x), t = 1 / (1 + 0.5 * z);
        double r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
            t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1 - r : r - 1;
    }
}
