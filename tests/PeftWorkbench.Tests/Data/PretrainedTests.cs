using PeftWorkbench.Data;
using PeftWorkbench.Vit;
using TorchSharp;

namespace PeftWorkbench.Tests.Data;

public class PretrainedTests
{
    /// <summary>Measured for the shipped checkpoint (see Pretrained/mini.recipe.json); the floor leaves room for BLAS differences.</summary>
    public const double ZeroShotFloor = 72.0;

    /// <summary>`peft data zero-shot` reads the default backbone (mini-hand, whose digit head passed its 90 % rule) unless
    /// another is named, says which, and names an unknown one.</summary>
    [Fact]
    public void The_zero_shot_report_names_its_backbone_the_default_unless_told()
    {
        static double Top1(string line) => double.Parse(line.Split("top-1 ")[1].TrimEnd(' ', '%'), System.Globalization.CultureInfo.InvariantCulture);
        var hand = DataReports.ZeroShotDigits(Suite.Mini).Take(2).ToList();
        var mini = DataReports.ZeroShotDigits(Suite.Mini, "mini").Take(2).ToList();
        Assert.Equal(("backbone mini-hand", "backbone mini"), (hand[0], mini[0]));
        Assert.True(Top1(hand[1]) >= 88.0 && Top1(mini[1]) >= ZeroShotFloor && Top1(hand[1]) > Top1(mini[1]), $"{hand[1]} / {mini[1]}");
        var e = Assert.Throws<FileNotFoundException>(() => DataReports.ZeroShotDigits(Suite.Mini, "mini-hnad").First());
        Assert.Contains("'mini-hnad'", e.Message);
    }

    [Fact]
    public void Shipped_checkpoint_loads_strictly_with_the_character_head()
    {
        using var model = VisionTransformer.Pretrained("mini");
        Assert.Equal(GlyphRenderer.NumClasses, model.Config.NumClasses);
        Assert.Equal((32, 8), (model.Config.ImageSize, model.Config.PatchSize));
        using var fresh = new VisionTransformer(model.Config, seed: 0);
        Assert.Equal(fresh.named_parameters().Select(p => p.name).OrderBy(n => n), model.named_parameters().Select(p => p.name).OrderBy(n => n));
        // Trained weights differ from any fresh initialisation.
        Assert.True((model.pos_embed - fresh.pos_embed).abs().max().item<float>() > 0.05f);
        var recipe = System.Text.Json.Nodes.JsonNode.Parse(VisionTransformer.PretrainedRecipe("mini"))!;
        Assert.Equal("peft pretrain --recipe mini --out src/PeftWorkbench/Pretrained", recipe["command"]!.GetValue<string>());
    }

    [Fact]
    public void Zero_shot_digit_accuracy_on_mnist_test_is_above_the_floor()
    {
        using var model = VisionTransformer.Pretrained("mini");
        using var test = Suite.Mini.LoadSplit("mnist", "test");
        double acc = ZeroShot.DigitAccuracy(model, test);
        Assert.True(acc >= ZeroShotFloor, $"zero-shot MNIST test top-1 {acc:F2} % < floor {ZeroShotFloor} %");
        // The digit head, kept alone, is the same classifier.
        using var few = test.Subset(Enumerable.Range(0, 200).Select(i => (long)i).ToArray());
        double before = ZeroShot.DigitAccuracy(model, few);
        model.KeepHeadRows(10);
        Assert.Equal(10, model.Config.NumClasses);
        Assert.Equal(before, ZeroShot.DigitAccuracy(model, few), 6);
    }

    [Fact]
    public void Strict_load_names_missing_and_wrongly_shaped_keys()
    {
        using var dir = new TempDir();
        var config = VitConfig.Preset("mini") with { Depth = 1, NumClasses = 3 };
        using (var model = new VisionTransformer(config, seed: 1)) model.SaveWorkbenchCheckpoint(dir.File("ok.safetensors"));
        using (var loaded = VisionTransformer.LoadStrict(dir.File("ok.safetensors")))
        using (var again = new VisionTransformer(config, seed: 1))
            Assert.True(((TorchSharp.Modules.Linear)loaded.head).weight!.allclose(((TorchSharp.Modules.Linear)again.head).weight!));

        var file = PeftWorkbench.Checkpoints.SafetensorsFile.Open(dir.File("ok.safetensors"));
        var tensors = file.ReadAll();
        tensors.Remove("norm.bias");
        PeftWorkbench.Checkpoints.SafetensorsFile.Write(dir.File("missing.safetensors"), tensors, file.Metadata);
        var e = Assert.Throws<InvalidDataException>(() => VisionTransformer.LoadStrict(dir.File("missing.safetensors")));
        Assert.Contains("norm.bias", e.Message);

        tensors["norm.bias"] = torch.zeros(7);
        PeftWorkbench.Checkpoints.SafetensorsFile.Write(dir.File("shape.safetensors"), tensors, file.Metadata);
        e = Assert.Throws<InvalidDataException>(() => VisionTransformer.LoadStrict(dir.File("shape.safetensors")));
        Assert.Contains("norm.bias", e.Message); Assert.Contains("[7]", e.Message);
    }

    [Fact]
    public void Pretrained_features_beat_random_features_on_natural_tasks()
    {
        // Closed-form ridge probe on 200 training and 200 test images per task: a small subset of the note's table.
        using var pre = VisionTransformer.Pretrained("mini");
        using var rand = new VisionTransformer(pre.Config, seed: 0);
        foreach (var task in Suite.Mini.Tasks.Where(t => t.Group == "natural").Select(t => t.Name))
        {
            using var trainAll = Suite.Mini.LoadSplit(task, "train800");
            using var testAll = Suite.Mini.LoadSplit(task, "test");
            using var train = trainAll.Subset(Enumerable.Range(0, 200).Select(i => (long)i).ToArray());
            using var test = testAll.Subset(Enumerable.Range(0, 200).Select(i => (long)i).ToArray());
            double a = TransferProbe.Ridge(pre, train, test), b = TransferProbe.Ridge(rand, train, test);
            Assert.True(a > b + 2, $"{task}: pre-trained {a:F1} % vs random {b:F1} %");
        }
    }

    [Fact]
    public void Glyph_renderer_is_deterministic_and_digits_come_first()
    {
        Assert.Equal("0123456789", GlyphRenderer.Characters[..10]);
        using var fonts = GlyphRenderer.FromSystemFonts();
        Assert.True(fonts.FontFiles.Count >= 50, $"{fonts.FontFiles.Count} fonts");
        var a = fonts.Render(40, 3);
        var b = fonts.Render(40, 3);
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.Equal(a.Labels, b.Labels);
        Assert.All(a.Labels, l => Assert.InRange(l, 0, GlyphRenderer.NumClasses - 1));
    }
}
