using System.Security.Cryptography;
using PeftWorkbench.Data;
using PeftWorkbench.Data.Upstream;

namespace PeftWorkbench.Tests.Pretraining;

public class UpstreamDisjointnessTests
{
    static HashSet<string> Hashes(RawImages raw)
    {
        var set = new HashSet<string>();
        for (int i = 0; i < raw.Count; i++)
            set.Add(Convert.ToHexString(SHA256.HashData(raw.Pixels.AsSpan(i * raw.ImageBytes, raw.ImageBytes))));
        return set;
    }

    /// <summary>Images of <paramref name="a"/> that also appear, byte for byte, in <paramref name="b"/>.</summary>
    static int Shared(RawImages a, RawImages b) => Hashes(a).Intersect(Hashes(b)).Count();

    [Fact]
    public void The_same_seed_and_stream_give_the_same_bytes_and_another_stream_other_bytes()
    {
        using var fonts = GlyphRenderer.FromSystemFonts();
        var upstream = BroadRecipe.Get("mini-broad").Upstream(fonts);
        var a = upstream.Render(120, 20261, "train/0");
        var b = upstream.Render(120, 20261, "train/0");
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.Equal(a.Labels, b.Labels);
        var c = upstream.Render(120, 20261, "train/1");
        Assert.Equal(0, Shared(a, c));
        // A fresh set of sources (fractal systems rebuilt from the seed) draws the same images.
        using var fonts2 = GlyphRenderer.FromSystemFonts();
        Assert.Equal(a.Pixels, BroadRecipe.Get("mini-broad").Upstream(fonts2).Render(120, 20261, "train/0").Pixels);
    }

    [Fact]
    public void Every_source_is_drawn_and_labels_stay_in_their_source_range()
    {
        using var fonts = GlyphRenderer.FromSystemFonts();
        var upstream = BroadRecipe.Get("mini-broad").Upstream(fonts);
        Assert.Equal(62 + 100 + 16 + 10, upstream.NumClasses);
        Assert.Equal("glyphs", upstream.SourceOf(9).Source.Name); // head outputs 0-9 stay the digits
        var raw = upstream.Render(400, 20261, "val");
        var bySource = raw.Labels.GroupBy(l => upstream.SourceOf(l).Source.Name).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new[] { "fractals", "glyphs", "shapes", "textures" }, bySource.Keys.OrderBy(k => k));
        Assert.InRange(bySource["glyphs"], 120, 200); // share 0.4 of 400
        Assert.Equal(raw.Count, Hashes(raw).Count); // no two images alike
    }

    [Theory]
    [InlineData("mini-broad")]
    [InlineData("mini-hand")]
    public void No_upstream_image_appears_in_any_downstream_task(string name)
    {
        using var fonts = GlyphRenderer.FromSystemFonts();
        var recipe = BroadRecipe.Get(name);
        var upstream = recipe.Upstream(fonts);
        var up = Hashes(upstream.Render(300, recipe.DataSeed, "train/0"));
        up.UnionWith(Hashes(upstream.Render(300, recipe.DataSeed, "val")));
        foreach (var task in Suite.Mini.Tasks)
            foreach (var split in new[] { "train800val200", "test" })
            {
                var down = Suite.Mini.LoadRaw(task.Name, split);
                Assert.Equal((3, 32, 32), (down.Channels, down.Height, down.Width));
                var shared = up.Intersect(Hashes(down)).Count();
                Assert.True(shared == 0, $"{shared} upstream images appear in {task.Name}/{split}");
            }
    }

    [Fact]
    public void The_warp_bends_glyphs_only_where_a_recipe_asks_and_old_recipes_keep_their_identity()
    {
        // The candidate's recipe.json was written before GlyphWarp existed: the field stays out of its fingerprint.
        Assert.Equal("74b03084abb2d237", BroadRecipe.Get("mini-broad").Fingerprint());
        Assert.DoesNotContain("GlyphWarp", BroadRecipe.Get("mini-broad").ToJson());
        Assert.Contains("\"GlyphWarp\":2.5", BroadRecipe.Get("mini-hand").ToJson());

        using var fonts = GlyphRenderer.FromSystemFonts();
        byte[] Draw(double warp, int cls)
        {
            var chw = new byte[3 * 32 * 32];
            new GlyphSource(fonts, warp).Draw(Rng.For(5, "warp"), cls, 32, chw);
            return chw;
        }
        Assert.Equal(Draw(0, 3), Draw(0, 3));
        Assert.Equal(Draw(2.5, 3), Draw(2.5, 3)); // deterministic per seed
        Assert.NotEqual(Draw(0, 3), Draw(2.5, 3));

        // The field moves pixels by about its amplitude: a one-pixel dot lands within a few pixels, ink is kept.
        var mask = new float[32 * 32];
        mask[16 * 32 + 16] = 1;
        GlyphRenderer.Warp(Rng.For(1, "dot"), mask, 32, 1.5);
        Assert.InRange(mask.Sum(), 0.5, 1.5);
        int at = Array.IndexOf(mask, mask.Max());
        Assert.InRange(Math.Abs(at % 32 - 16) + Math.Abs(at / 32 - 16), 0, 8);
        var still = new float[32 * 32];
        still[16 * 32 + 16] = 1;
        GlyphRenderer.Warp(Rng.For(1, "dot"), still, 32, 0);
        Assert.Equal(1f, still[16 * 32 + 16]);
    }

    [Fact]
    public void The_check_finds_an_image_that_is_in_both()
    {
        // The comparison above can fail: a downstream image slipped into the upstream is found.
        using var fonts = GlyphRenderer.FromSystemFonts();
        var up = BroadRecipe.Get("mini-broad").Upstream(fonts).Render(20, 20261, "val");
        var down = Suite.Mini.LoadRaw("landcover", "test");
        Array.Copy(down.Pixels, 5 * down.ImageBytes, up.Pixels, 3 * up.ImageBytes, up.ImageBytes);
        Assert.Equal(1, Shared(up, down));
    }
}
