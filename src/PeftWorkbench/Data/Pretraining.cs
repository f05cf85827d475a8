using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Data;

/// <summary>
/// An upstream pre-training recipe: what data, what model, how long. The "mini" recipe makes the shipped
/// checkpoint: the mini ViT trained on rendered characters (<see cref="GlyphRenderer"/>) through the one
/// training loop (<see cref="Trainer.Fit"/>).
/// </summary>
public sealed record PretrainRecipe
{
    public required string Name { get; init; }
    public required string Preset { get; init; }
    public int TrainImages { get; init; }
    public int ValImages { get; init; }
    public ulong DataSeed { get; init; }
    public required TrainOptions Train { get; init; }

    public static IReadOnlyDictionary<string, PretrainRecipe> Recipes { get; } = new Dictionary<string, PretrainRecipe>
    {
        ["mini"] = new()
        {
            // Sized for ~20-25 minutes on a shared 2-core machine (about 280 images/s for this model there).
            Name = "mini", Preset = "mini", TrainImages = 60_000, ValImages = 5_000, DataSeed = 20251,
            Train = new TrainOptions
            {
                Epochs = 6, WarmupEpochs = 1, BatchSize = 128, Lr = 1e-3, WeightDecay = 0.05, MinLr = 1e-5,
                Stepping = ScheduleStepping.PerStep, LabelSmoothing = 0.1, ClipGradNorm = 1.0, EvalEvery = 1, Seed = 20251,
            },
        },
        // Seconds, for tests and a first look: the same code path on a sliver of the data.
        ["smoke"] = new()
        {
            Name = "smoke", Preset = "mini", TrainImages = 2_000, ValImages = 500, DataSeed = 20251,
            Train = new TrainOptions { Epochs = 1, BatchSize = 128, Lr = 1e-3, WeightDecay = 0.05, Seed = 20251 },
        },
    };

    public static PretrainRecipe Get(string name) =>
        Recipes.TryGetValue(name, out var r) ? r
        : throw new ArgumentException($"Unknown pre-training recipe '{name}'. Known: {string.Join(", ", Recipes.Keys)}.");
}

/// <summary>Feeds uint8 images to the ViT: normalises in the forward pass so 120k images stay 3 KB each in memory.</summary>
sealed class ByteInput : nn.Module<Tensor, Tensor>
{
    public readonly VisionTransformer vit;
    readonly Normalization norm;
    public ByteInput(VisionTransformer vit, Normalization norm) : base(nameof(ByteInput)) { this.vit = vit; this.norm = norm; RegisterComponents(); }
    public override Tensor forward(Tensor x) => vit.call(x.dtype == ScalarType.Byte ? Transforms.Normalize(x, norm) : x);
}

public static class Pretraining
{
    /// <summary>
    /// Runs a recipe: renders the data, trains, measures zero-shot digit accuracy on the suite's MNIST test split
    /// (when the MNIST package data is installed), writes &lt;out&gt;/&lt;name&gt;.safetensors and &lt;name&gt;.recipe.json.
    /// </summary>
    public static (VisionTransformer Model, JsonObject Record) Run(PretrainRecipe recipe, string outDir, string command,
        IProgress<TrainProgress>? progress = null, Action<string>? log = null, CancellationToken cancel = default)
    {
        log ??= _ => { };
        var wall = Stopwatch.StartNew();
        var config = VitConfig.Preset(recipe.Preset) with { NumClasses = GlyphRenderer.NumClasses };
        using var fonts = GlyphRenderer.FromSystemFonts();
        log($"rendering {recipe.TrainImages:N0} + {recipe.ValImages:N0} glyph images from {fonts.FontFiles.Count} fonts");
        var renderClock = Stopwatch.StartNew();
        using var train = ByteSet(fonts.Render(recipe.TrainImages, recipe.DataSeed, config.ImageSize, "pretrain-train"), "glyphs-train");
        using var val = ByteSet(fonts.Render(recipe.ValImages, recipe.DataSeed, config.ImageSize, "pretrain-val"), "glyphs-val");
        double renderSeconds = renderClock.Elapsed.TotalSeconds;
        log($"rendered in {renderSeconds:F1} s; training {config.Name} ({config.EmbedDim}d x {config.Depth}) for {recipe.Train.Epochs} epochs");

        var vit = new VisionTransformer(config, seed: recipe.Train.Seed);
        var history = Trainer.Fit(new ByteInput(vit, Normalization.Half), train, val, recipe.Train with { Device = torch.CPU }, progress, cancel);
        if (!history.Completed) throw new InvalidOperationException($"pre-training stopped early (diverged: {history.Diverged}, cancelled: {history.Cancelled})");

        double? zeroShot = null;
        try
        {
            using var mnist = Suite.Mini.LoadSplit("mnist", "test");
            zeroShot = ZeroShot.DigitAccuracy(vit, mnist);
            log($"zero-shot MNIST test accuracy: {zeroShot:F2} %");
        }
        catch (FileNotFoundException e) { log($"zero-shot MNIST skipped: {e.Message}"); }
        catch (DirectoryNotFoundException e) { log($"zero-shot MNIST skipped: {e.Message}"); }

        var record = new JsonObject
        {
            ["recipe"] = recipe.Name,
            ["command"] = command,
            ["model"] = JsonSerializer.SerializeToNode(VisionTransformer.ConfigMetadata(config)),
            ["parameters"] = vit.ParameterCount,
            ["data"] = new JsonObject
            {
                ["task"] = "rendered characters: 0-9, A-Z, a-z (62 classes; class k = GlyphRenderer.Characters[k])",
                ["digit_share"] = GlyphRenderer.DigitShare,
                ["train_images"] = recipe.TrainImages, ["val_images"] = recipe.ValImages,
                ["data_seed"] = recipe.DataSeed, ["fonts"] = fonts.FontFiles.Count,
                ["font_files"] = new JsonArray(fonts.FontFiles.Select(f => (JsonNode)Path.GetFileName(f)).ToArray()),
                ["normalization"] = "mean = std = 0.5",
            },
            ["train"] = new JsonObject
            {
                ["epochs"] = recipe.Train.Epochs, ["warmup_epochs"] = recipe.Train.WarmupEpochs, ["batch_size"] = recipe.Train.BatchSize,
                ["optimizer"] = recipe.Train.Optimizer, ["lr"] = recipe.Train.Lr, ["weight_decay"] = recipe.Train.WeightDecay,
                ["label_smoothing"] = recipe.Train.LabelSmoothing, ["clip_grad_norm"] = recipe.Train.ClipGradNorm, ["seed"] = recipe.Train.Seed,
            },
            ["results"] = new JsonObject
            {
                ["final_loss"] = history.FinalLoss, ["val_top1"] = history.LastEvalTop1,
                ["zero_shot_mnist_test_top1"] = zeroShot,
                ["epoch_val_top1"] = new JsonArray(history.Epochs.Where(e => e.EvalTop1 is not null).Select(e => (JsonNode)new JsonObject { ["epoch"] = e.Epoch + 1, ["top1"] = e.EvalTop1 }).ToArray()),
            },
            ["time"] = new JsonObject
            {
                ["render_seconds"] = Math.Round(renderSeconds, 1), ["train_seconds"] = Math.Round(history.WallSeconds, 1),
                ["total_seconds"] = Math.Round(wall.Elapsed.TotalSeconds, 1), ["images_per_second"] = Math.Round(history.ImagesPerSecond, 1),
                ["threads"] = torch.get_num_threads(), ["cpu_cores"] = Environment.ProcessorCount,
            },
            ["finished_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            ["versions"] = new JsonObject { ["peftworkbench"] = Workbench.Version, ["libtorch"] = torch.__version__ },
        };
        Directory.CreateDirectory(outDir);
        vit.SaveWorkbenchCheckpoint(Path.Combine(outDir, $"{recipe.Name}.safetensors"),
            new Dictionary<string, string> { ["recipe"] = recipe.Name, ["classes"] = GlyphRenderer.Characters });
        WriteAtomic(Path.Combine(outDir, $"{recipe.Name}.recipe.json"), record.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return (vit, record);
    }

    static ImageSet ByteSet(RawImages raw, string name) =>
        new(Transforms.ToByteTensor(raw), torch.tensor(raw.Labels, ScalarType.Int64), raw.NumClasses, name);

    internal static void WriteAtomic(string path, string text) => Checkpoints.AtomicFile.WriteText(path, text);
}

/// <summary>Zero-shot digit classification with the pre-trained character head: argmax over its first ten outputs.</summary>
public static class ZeroShot
{
    public static double DigitAccuracy(VisionTransformer model, ImageSet digits, int batchSize = 256)
    {
        if (digits.NumClasses != 10) throw new ArgumentException($"'{digits.Name}' has {digits.NumClasses} classes; zero-shot digits needs 10");
        if (model.Config.NumClasses < 10) throw new ArgumentException($"the model's head has {model.Config.NumClasses} outputs; zero-shot digits needs the first 10 to be the digits");
        bool wasTraining = model.training;
        model.eval();
        long correct = 0;
        using (torch.no_grad())
            for (long i = 0; i < digits.Count; i += batchSize)
            {
                using var scope = torch.NewDisposeScope();
                long n = Math.Min(batchSize, digits.Count - i);
                var logits = model.call(digits.Images.narrow(0, i, n)).narrow(1, 0, 10);
                correct += logits.argmax(1).eq(digits.Labels.narrow(0, i, n)).sum().item<long>();
            }
        model.train(wasTraining);
        return digits.Count == 0 ? 0 : 100.0 * correct / digits.Count;
    }
}
