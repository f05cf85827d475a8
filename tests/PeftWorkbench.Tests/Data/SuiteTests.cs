using PeftWorkbench.Data;
using TorchSharp;

namespace PeftWorkbench.Tests.Data;

public class SuiteTests
{
    [Fact]
    public void Mini_suite_has_vtab_groups_and_protocol_sizes()
    {
        var tasks = Suite.Mini.Tasks;
        Assert.True(tasks.Count >= 9);
        foreach (var g in Suite.Groups) Assert.Contains(tasks, t => t.Group == g);
        Assert.True(tasks.Count(t => t.Group == "natural") >= 3);
        Assert.True(tasks.Count(t => t.ManyShotTrain >= 10_000) >= 3);
        foreach (var t in tasks)
        {
            Assert.Equal((800, 200, 1000), (t.Train800, t.Val200, t.Train800Val200));
            Assert.True(t.Test >= 1000 || t.Name == "digits", $"{t.Name}: test {t.Test}");
            Assert.NotEmpty(t.Shifts);
        }
        foreach (var name in new[] { "dsprites-loc", "dsprites-ori", "clevr-count", "clevr-dist", "smallnorb-azi", "smallnorb-ele" })
            Assert.Equal("structured", Suite.Mini.Info(name).Group);
    }

    [Fact]
    public void Split_permutations_are_fixed_across_runs()
    {
        // Fingerprints recorded from this generator: if they change, every machine's splits change (bump MiniSuite.CacheVersion).
        var rng = Rng.For(MiniSuite.Seed, "mnist/split");
        var perm = rng.Permutation(10_000);
        Assert.Equal(new[] { 2885, 9349, 9055, 4259, 8392 }, perm[..5]);
        Assert.Equal(perm, Rng.For(MiniSuite.Seed, "mnist/split").Permutation(10_000));
        Assert.NotEqual(perm[..20], Rng.For(MiniSuite.Seed, "digits/split").Permutation(10_000)[..20]);
        Assert.Equal(10_000, perm.Distinct().Count());
    }

    [Fact]
    public void Mnist_splits_are_disjoint_nested_and_reproducible()
    {
        var a800 = Suite.Mini.LoadRaw("mnist", "train800");
        var a200 = Suite.Mini.LoadRaw("mnist", "val200");
        var all = Suite.Mini.LoadRaw("mnist", "train800val200");
        var test = Suite.Mini.LoadRaw("mnist", "test");
        Assert.Equal((800, 200, 1000, 2000), (a800.Count, a200.Count, all.Count, test.Count));
        Assert.Equal(all.Pixels, a800.Pixels.Concat(a200.Pixels).ToArray());
        // No test image equals a training image (the npm set has no exact duplicates across our splits).
        var trainImgs = Enumerable.Range(0, all.Count).Select(i => Convert.ToBase64String(all.Pixels, i * all.ImageBytes, all.ImageBytes)).ToHashSet();
        Assert.DoesNotContain(Enumerable.Range(0, test.Count), i => trainImgs.Contains(Convert.ToBase64String(test.Pixels, i * test.ImageBytes, test.ImageBytes)));
        // Every class appears in train800.
        Assert.Equal(10, a800.Labels.Distinct().Count());
        using var set = Suite.Mini.LoadSplit("mnist", "train800");
        Assert.Equal(new long[] { 800, 3, 32, 32 }, set.Images.shape);
        Assert.Equal(torch.ScalarType.Float32, set.Images.dtype);
        Assert.InRange(set.Images.min().item<float>(), -1.001f, -0.99f);
        Assert.InRange(set.Images.max().item<float>(), 0.99f, 1.001f);
    }

    [Fact]
    public void Procedural_task_renders_the_same_images_for_the_same_seed()
    {
        var task = new ClevrTask(ClevrTask.Target.Count);
        var a = Procedural.Render(task, 20, 11, "t");
        var b = Procedural.Render(task, 20, 11, "t");
        var c = Procedural.Render(task, 20, 12, "t");
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.Equal(a.Labels, b.Labels);
        Assert.NotEqual(a.Pixels, c.Pixels);
    }

    [Fact]
    public void Fashion_many_shot_contains_the_vtab_training_pool()
    {
        var many = Suite.Mini.LoadRaw("fashion-mnist", Suite.ManyShotSplit);
        var pool = Suite.Mini.LoadRaw("fashion-mnist", "train800val200");
        Assert.Equal(10_000, many.Count);
        Assert.Equal(pool.Pixels, many.Pixels.AsSpan(0, pool.Pixels.Length).ToArray());
        var e = Assert.Throws<ArgumentException>(() => Suite.Mini.LoadRaw("mnist", Suite.ManyShotSplit));
        Assert.Contains("fashion-mnist", e.Message);
    }

    [Fact]
    public void Shift_sets_keep_classes_and_change_pixels()
    {
        using var clean = Suite.Mini.LoadSplit("mnist", "test");
        using var noisy = Suite.Mini.LoadShift("mnist", "gaussian_noise-3");
        Assert.Equal(clean.Labels.data<long>().ToArray(), noisy.Labels.data<long>().ToArray());
        Assert.True((clean.Images - noisy.Images).abs().mean().item<float>() > 0.05f);
        using var digits = Suite.Mini.LoadShift("mnist", "digits");
        Assert.Equal(1797, digits.Count);
        Assert.Equal(new long[] { 1797, 3, 32, 32 }, digits.Images.shape);
        Assert.Throws<ArgumentException>(() => Suite.Mini.LoadShift("mnist", "fog-3"));
    }

    [Fact]
    public void Unknown_names_list_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => Suite.Mini.Load("cifar"));
        Assert.Contains("mnist", e.Message);
        e = Assert.Throws<ArgumentException>(() => Suite.Mini.LoadSplit("mnist", "train"));
        Assert.Contains("train800", e.Message);
    }
}
