namespace PeftWorkbench.Vit;

/// <summary>The shape of a Vision Transformer. Field meanings follow timm's VisionTransformer arguments.</summary>
public sealed record VitConfig
{
    public string Name { get; init; } = "custom";
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 16;
    public int InChans { get; init; } = 3;
    public int EmbedDim { get; init; } = 768;
    public int Depth { get; init; } = 12;
    public int NumHeads { get; init; } = 12;
    public double MlpRatio { get; init; } = 4.0;
    public int NumClasses { get; init; } = 1000;
    public bool QkvBias { get; init; } = true;
    /// <summary>Bias on the patch-embedding convolution (CLIP has none).</summary>
    public bool PatchBias { get; init; } = true;
    /// <summary>A LayerNorm after patch embedding + positions (CLIP's ln_pre, timm's norm_pre).</summary>
    public bool PreNorm { get; init; }
    /// <summary>"gelu" (exact, as timm's ViT) or "quick_gelu" (OpenAI CLIP).</summary>
    public string Activation { get; init; } = "gelu";
    public double LayerNormEps { get; init; } = 1e-6;
    public double DropPathRate { get; init; }
    public double DropRate { get; init; }

    public int GridSize => ImageSize / PatchSize;
    public int NumPatches => GridSize * GridSize;
    public int MlpHidden => (int)(EmbedDim * MlpRatio);

    public void Validate()
    {
        if (ImageSize <= 0 || PatchSize <= 0 || ImageSize % PatchSize != 0)
            throw new ArgumentException($"VitConfig '{Name}': ImageSize {ImageSize} must be a positive multiple of PatchSize {PatchSize}.");
        if (EmbedDim <= 0 || NumHeads <= 0 || EmbedDim % NumHeads != 0)
            throw new ArgumentException($"VitConfig '{Name}': EmbedDim {EmbedDim} must be a positive multiple of NumHeads {NumHeads}.");
        if (Depth <= 0) throw new ArgumentException($"VitConfig '{Name}': Depth must be positive, got {Depth}.");
        if (NumClasses < 0) throw new ArgumentException($"VitConfig '{Name}': NumClasses must be >= 0, got {NumClasses}.");
        if (Activation is not ("gelu" or "quick_gelu"))
            throw new ArgumentException($"VitConfig '{Name}': Activation must be 'gelu' or 'quick_gelu', got '{Activation}'.");
        if (DropPathRate is < 0 or >= 1) throw new ArgumentException($"VitConfig '{Name}': DropPathRate must be in [0, 1), got {DropPathRate}.");
    }

    /// <summary>Named shapes: the study's backbones and small ones a 2-core CPU trains in minutes.</summary>
    public static IReadOnlyDictionary<string, VitConfig> Presets { get; } = new Dictionary<string, VitConfig>
    {
        // The study's backbone: ViT-B/16 pre-trained on ImageNet-21K (Google's ViT-B_16.npz).
        ["vit-b16"] = new() { Name = "vit-b16" },
        // OpenAI CLIP ViT-B/16 image tower: pre-norm, QuickGELU, no patch-embedding bias.
        ["clip-vit-b16"] = new() { Name = "clip-vit-b16", PatchBias = false, PreNorm = true, Activation = "quick_gelu", LayerNormEps = 1e-5 },
        // ViT-S shape on 32 px images: the larger CPU benchmark preset.
        ["small-32"] = new() { Name = "small-32", ImageSize = 32, PatchSize = 4, EmbedDim = 384, Depth = 12, NumHeads = 6, NumClasses = 10 },
        // ViT-Ti-like on 32 px images (the shape measured in shared/ENVIRONMENT.md).
        ["tiny-32"] = new() { Name = "tiny-32", ImageSize = 32, PatchSize = 4, EmbedDim = 192, Depth = 6, NumHeads = 3, NumClasses = 10 },
        // The embedded default: 32 px images, 8 px patches (16 tokens + class token), small enough for minutes on 2 cores.
        ["mini"] = new() { Name = "mini", ImageSize = 32, PatchSize = 8, EmbedDim = 128, Depth = 6, NumHeads = 4, NumClasses = 10 },
        // The same width and depth with finer 4 px patches (64 tokens): slower, for comparison.
        ["mini-p4"] = new() { Name = "mini-p4", ImageSize = 32, PatchSize = 4, EmbedDim = 128, Depth = 6, NumHeads = 4, NumClasses = 10 },
    };

    public static VitConfig Preset(string name) =>
        Presets.TryGetValue(name, out var c) ? c
        : throw new ArgumentException($"Unknown ViT preset '{name}'. Known presets: {string.Join(", ", Presets.Keys)}.");

    /// <summary>The most classes a head may be asked for by hand (`--classes`): far above any real head (ImageNet-21k has
    /// 21,843), far below one that libtorch cannot allocate (2,000,000,000 x 768 floats ended in an allocation trace).</summary>
    public const int MaxClasses = 1_000_000;

    /// <summary>This shape with <paramref name="classes"/> outputs (null: unchanged), checked before any tensor is made.</summary>
    public VitConfig WithClasses(int? classes) => classes switch
    {
        null => this,
        < 1 or > MaxClasses => throw new ArgumentException($"--classes {classes}: give a head size from 1 to {MaxClasses:N0}."),
        int n => this with { NumClasses = n },
    };
}
