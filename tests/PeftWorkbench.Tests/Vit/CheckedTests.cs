using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Vit;

/// <summary>libtorch's matmul aborts the process on a shape mismatch (exit 134); the library's calls go through
/// Checked.MatMul, which throws instead. Before it, this test ended the test host.</summary>
public class CheckedTests
{
    [Fact]
    public void MismatchedShapesThrowInsteadOfAborting()
    {
        using var a = ones(2, 3);
        var e = Assert.Throws<ArgumentException>(() => Checked.MatMul(a, ones(2, 3), "probe"));
        Assert.Equal("probe: cannot multiply [2, 3] by [2, 3]: inner dimensions 3 and 2 differ", e.Message);
        Assert.Throws<ArgumentException>(() => Checked.MatMul(ones(4, 2, 3), ones(5, 3, 2)));
        Assert.Throws<ArgumentException>(() => Checked.MatMul(ones(3), ones(2)));
        Assert.Throws<ArgumentException>(() => Checked.MatMul(tensor(1f), ones(2)));
    }

    [Fact]
    public void MatchingShapesGiveTorchMatmul()
    {
        var r = new Generator(3);
        foreach (var (sa, sb) in new[] { (new long[] { 2, 3 }, new long[] { 3, 4 }), (new long[] { 3 }, new long[] { 3, 4 }), (new long[] { 2, 3 }, new long[] { 3 }),
                     (new long[] { 5, 2, 3 }, new long[] { 3, 4 }), (new long[] { 5, 1, 2, 3 }, new long[] { 6, 3, 4 }), (new long[] { 3 }, new long[] { 3 }) })
        {
            using var a = randn(sa, generator: r);
            using var b = randn(sb, generator: r);
            Assert.True(Checked.MatMul(a, b).allclose(a.matmul(b)));
        }
    }
}
