using System.Text.RegularExpressions;
using PeftWorkbench.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Peft;

/// <summary>Issue 26's leftover: PEFT modules scale tensors by C# numbers through explicit, disposed Scalars
/// (<see cref="ScalarOps"/>), with the numbers of the inline form bit for bit.</summary>
public class ScalarOpsTests
{
    static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.BFloat16)]
    public void Times_and_TowardOne_give_the_inline_forms_numbers_bit_for_bit(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var t = randn(new long[] { 7, 5 }, generator: new Generator(3)).to(dtype);
        foreach (var k in new[] { 0.3, 1.0 / 3, 1e-7, 0.5, 10.0, 2.0 / 3 })
        {
            Assert.True(Same(t * k, t.Times(k)), $"Times({k}) on {dtype}");
            Assert.True(Same((t - 1) * k + 1, t.TowardOne(k)), $"TowardOne({k}) on {dtype}");
        }
    }

    /// <summary>No module under src/PeftWorkbench/Peft multiplies a tensor expression by one of the C# numbers the methods
    /// scale with (scale, scaling, strength, s, k) inline: each goes through <see cref="ScalarOps"/>.</summary>
    [Fact]
    public void No_PEFT_module_scales_a_tensor_by_an_implicit_Scalar()
    {
        var dir = Path.Combine(TestPaths.Repo, "src", "PeftWorkbench", "Peft");
        var inline = new Regex(@"(\)|\bdelta|\bshift)\s*\*\s*\(?\s*(Scale|scale|scaling|strength|State\.Strength|s|k)\b");
        var found = Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories)
            .SelectMany(f => File.ReadLines(f).Select((l, i) => (f, i, l)))
            .Where(x => !x.l.TrimStart().StartsWith("//", StringComparison.Ordinal) && inline.IsMatch(x.l))
            .Select(x => $"{Path.GetRelativePath(dir, x.f)}:{x.i + 1}: {x.l.Trim()}").ToList();
        Assert.Empty(found);
    }
}
