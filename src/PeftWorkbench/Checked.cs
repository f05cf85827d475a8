using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench;

/// <summary>
/// libtorch ops whose shape errors abort the whole process instead of throwing (TorchSharp's native matmul wrapper
/// has no try/catch: `ones(2,3).matmul(ones(2,3))` ends in "terminate called", exit 134, killing a kernel or a run).
/// The library calls them through here: the shapes are checked first and a mismatch is an ArgumentException.
/// </summary>
public static class Checked
{
    /// <summary>torch.matmul with its shape rule checked: the inner dimensions agree (1-D operands count as a row or a
    /// column vector) and batch dimensions broadcast.</summary>
    public static Tensor MatMul(Tensor a, Tensor b, string? what = null)
    {
        if (a.dim() == 0 || b.dim() == 0) throw Mismatch(a, b, what, "both operands need at least one dimension");
        long inner = a.shape[^1], against = b.dim() == 1 ? b.shape[0] : b.shape[^2];
        if (inner != against) throw Mismatch(a, b, what, $"inner dimensions {inner} and {against} differ");
        if (a.dim() > 2 && b.dim() > 2)
        {
            var (ba, bb) = (a.shape[..^2], b.shape[..^2]);
            for (int i = 1; i <= Math.Min(ba.Length, bb.Length); i++)
                if (ba[^i] != bb[^i] && ba[^i] != 1 && bb[^i] != 1) throw Mismatch(a, b, what, "batch dimensions do not broadcast");
        }
        return a.matmul(b);
    }

    static ArgumentException Mismatch(Tensor a, Tensor b, string? what, string why) =>
        new($"{(what is null ? "" : what + ": ")}cannot multiply [{string.Join(", ", a.shape)}] by [{string.Join(", ", b.shape)}]: {why}");
}
