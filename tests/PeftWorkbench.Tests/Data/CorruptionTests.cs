using PeftWorkbench.Data;

namespace PeftWorkbench.Tests.Data;

public class CorruptionTests
{
    static RawImages Sample() => Procedural.Render(new DSpritesTask(DSpritesTask.Target.Location), 30, 5, "corrupt");

    static double MeanAbsDiff(RawImages a, RawImages b) => a.Pixels.Zip(b.Pixels, (x, y) => Math.Abs(x - y)).Average();

    [Theory]
    [InlineData("gaussian_noise")]
    [InlineData("impulse_noise")]
    [InlineData("gaussian_blur")]
    [InlineData("contrast")]
    [InlineData("pixelate")]
    public void Severity_increases_the_shift_and_is_deterministic(string name)
    {
        var clean = Sample();
        var diffs = new[] { 1, 3, 5 }.Select(s => MeanAbsDiff(clean, Corruptions.Apply(clean, name, s))).ToArray();
        Assert.True(diffs[0] > 0, $"{name}: severity 1 changed nothing");
        Assert.True(diffs[0] < diffs[1] && diffs[1] < diffs[2], $"{name}: {string.Join(", ", diffs)}");
        Assert.Equal(Corruptions.Apply(clean, name, 3).Pixels, Corruptions.Apply(clean, name, 3).Pixels);
        Assert.Equal(clean.Labels, Corruptions.Apply(clean, name, 3).Labels);
    }

    [Fact]
    public void Bad_names_and_severities_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Corruptions.Apply(Sample(), "fog", 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Corruptions.Apply(Sample(), "contrast", 6));
    }
}
