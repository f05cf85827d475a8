using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PeftWorkbench.Data.Upstream;

/// <summary>
/// A resumable pre-training recipe on the broad upstream (<see cref="BroadUpstream"/>): rendered characters,
/// fractal classes, textures and shapes under one head, streamed in chunks (chunk k = stream "train/k" of
/// <see cref="DataSeed"/>, so no image repeats and the data position is the step count), a per-step cosine
/// schedule over <see cref="Steps"/>, optionally starting from a shipped checkpoint (<see cref="InitFrom"/>:
/// every tensor copied, the head's rows for its classes kept). Everything here is the run's identity: a
/// checkpoint resumes only under the recipe (and data seed) that wrote it.
/// </summary>
public sealed record BroadRecipe
{
    public required string Name { get; init; }
    public string Preset { get; init; } = "mini";
    public string? InitFrom { get; init; }
    public ulong DataSeed { get; init; }
    public int FractalClasses { get; init; } = 100;
    public double GlyphShare { get; init; } = 0.4;
    /// <summary>Glyphs bent by a random elastic field of up to this many pixels (<see cref="GlyphRenderer.Warp"/>); 0: none.
    /// Left out of the JSON at 0, so the recipes written before it keep their fingerprints.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double GlyphWarp { get; init; }
    public double FractalShare { get; init; } = 0.35;
    public double TextureShare { get; init; } = 0.125;
    public double ShapeShare { get; init; } = 0.125;
    public int ChunkImages { get; init; }
    public int ValImages { get; init; }
    public int Steps { get; init; }
    public int BatchSize { get; init; } = 128;
    public double Lr { get; init; } = 5e-4;
    public int WarmupSteps { get; init; }
    public double MinLr { get; init; } = 1e-5;
    public double WeightDecay { get; init; } = 0.05;
    public double LabelSmoothing { get; init; } = 0.1;
    public double ClipGradNorm { get; init; } = 1.0;
    public int Seed { get; init; }
    public int CheckpointEvery { get; init; }
    public int EvalEvery { get; init; }

    public static IReadOnlyDictionary<string, BroadRecipe> Recipes { get; } = new Dictionary<string, BroadRecipe>
    {
        // Continues today's "mini" on the broad upstream. Sized for 2-3 sessions on the shared 2-core machine:
        // see Pretrained/README.md for the throughput it was sized by.
        ["mini-broad"] = new()
        {
            Name = "mini-broad", InitFrom = "mini", DataSeed = 20261, ChunkImages = 128 * 160, ValImages = 3000,
            Steps = 15_000, WarmupSteps = 400, Seed = 20261, CheckpointEvery = 100, EvalEvery = 500,
        },
        // Continues "mini-broad" (its finished candidate, Pretrained/candidates) with handwriting-like glyphs: each
        // glyph bent by an elastic field of up to 2.5 px, half the images glyphs, fresh data (another seed).
        ["mini-hand"] = new()
        {
            Name = "mini-hand", InitFrom = "src/PeftWorkbench/Pretrained/candidates/mini-broad.safetensors", DataSeed = 20262,
            GlyphShare = 0.5, FractalShare = 0.25, GlyphWarp = 2.5, ChunkImages = 128 * 160, ValImages = 3000,
            Steps = 3_000, WarmupSteps = 100, Lr = 2e-4, Seed = 20262, CheckpointEvery = 100, EvalEvery = 500,
        },
        // Seconds, for tests: the same code path; chunks of 48 with batches of 16 cross chunk edges.
        ["smoke-broad"] = new()
        {
            Name = "smoke-broad", DataSeed = 7, FractalClasses = 8, ChunkImages = 48, ValImages = 48, Steps = 10,
            BatchSize = 16, Lr = 1e-3, WarmupSteps = 2, Seed = 7, CheckpointEvery = 4, EvalEvery = 5,
        },
    };

    public static bool IsKnown(string name) => Recipes.ContainsKey(name);

    public static BroadRecipe Get(string name) =>
        Recipes.TryGetValue(name, out var r) ? r
        : throw new ArgumentException($"Unknown broad pre-training recipe '{name}'. Known: {string.Join(", ", Recipes.Keys)}.");

    [JsonIgnore] public int StepsPerChunk => ChunkImages / BatchSize;

    public void Validate()
    {
        if (BatchSize <= 0 || ChunkImages < BatchSize || ChunkImages % BatchSize != 0)
            throw new ArgumentException($"recipe '{Name}': ChunkImages ({ChunkImages}) must be a positive multiple of BatchSize ({BatchSize})");
        if (Steps <= 0 || CheckpointEvery <= 0 || EvalEvery <= 0 || ValImages <= 0)
            throw new ArgumentException($"recipe '{Name}': Steps, CheckpointEvery, EvalEvery and ValImages must be positive");
        if (FractalClasses <= 0) throw new ArgumentException($"recipe '{Name}': FractalClasses must be positive, got {FractalClasses}");
    }

    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>A short digest of every field: two runs continue each other only when it matches.</summary>
    public string Fingerprint() => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(ToJson())))[..16].ToLowerInvariant();

    /// <summary>The upstream this recipe trains on (fonts from the system font folders).</summary>
    public BroadUpstream Upstream(GlyphRenderer fonts) => new(new (IUpstreamSource, double)[]
    {
        (new GlyphSource(fonts, GlyphWarp), GlyphShare), (new Fractals(FractalClasses, DataSeed), FractalShare),
        (new Textures(), TextureShare), (new Shapes(), ShapeShare),
    });
}
