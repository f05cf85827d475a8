using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Data;

/// <summary>Per-channel mean and std applied after scaling pixels to 0..1.</summary>
public sealed record Normalization(double[] Mean, double[] Std)
{
    /// <summary>timm's ViT-B/16 (ImageNet-21K, augreg) pre-training and the study's CIFAR/RESISC many-shot code: mean = std = 0.5,
    /// so pixels land in [-1, 1]. (The study's VTAB-1K code does not normalise: see <see cref="None"/>.)</summary>
    public static Normalization Half { get; } = new(new[] { 0.5, 0.5, 0.5 }, new[] { 0.5, 0.5, 0.5 });
    /// <summary>No mean/std: pixels in [0, 1], as the study's VTAB-1K code reads them (normalized: False).</summary>
    public static Normalization None { get; } = new(new[] { 0.0, 0.0, 0.0 }, new[] { 1.0, 1.0, 1.0 });
    /// <summary>ImageNet statistics (timm's default for ImageNet-1K models).</summary>
    public static Normalization ImageNet { get; } = new(new[] { 0.485, 0.456, 0.406 }, new[] { 0.229, 0.224, 0.225 });
    /// <summary>OpenAI CLIP's statistics.</summary>
    public static Normalization Clip { get; } = new(new[] { 0.48145466, 0.4578275, 0.40821073 }, new[] { 0.26862954, 0.26130258, 0.27577711 });
}

/// <summary>Resizing, channel handling and normalisation: bytes in, model-ready tensors out.</summary>
public static class Transforms
{
    /// <summary>[N, C, H, W] uint8 tensor over the bytes (a copy).</summary>
    public static Tensor ToByteTensor(RawImages raw) =>
        torch.tensor(raw.Pixels, new long[] { raw.Count, raw.Channels, raw.Height, raw.Width }, ScalarType.Byte);

    public static RawImages FromByteTensor(Tensor images, long[] labels, int numClasses, string source)
    {
        if (images.dim() != 4 || images.dtype != ScalarType.Byte)
            throw new ArgumentException($"{source}: expected a [N, C, H, W] uint8 tensor, got {images.dtype} [{string.Join(", ", images.shape)}]");
        using var c = images.contiguous();
        return new RawImages(c.bytes.ToArray(), labels, (int)images.shape[1], (int)images.shape[2], (int)images.shape[3], numClasses, source).Validated();
    }

    /// <summary>Grayscale to RGB by repeating the channel; RGB stays as it is.</summary>
    public static RawImages ToRgb(RawImages raw)
    {
        if (raw.Channels == 3) return raw;
        if (raw.Channels != 1) throw new ArgumentException($"{raw.Source}: cannot make RGB from {raw.Channels} channels");
        int hw = raw.Height * raw.Width;
        var px = new byte[(long)raw.Count * 3 * hw];
        for (int i = 0; i < raw.Count; i++)
            for (int c = 0; c < 3; c++)
                Buffer.BlockCopy(raw.Pixels, i * hw, px, (i * 3 + c) * hw, hw);
        return raw with { Pixels = px, Channels = 3 };
    }

    /// <summary>
    /// Bicubic resize to size x size (the study's transform: torchvision Resize with interpolation 3 = bicubic).
    /// Downsizing uses antialiasing as PIL does; results are clamped and rounded back to bytes.
    /// </summary>
    public static RawImages Resize(RawImages raw, int size)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size), size, "image size must be positive");
        if (raw.Height == size && raw.Width == size) return raw;
        var outPx = new byte[(long)raw.Count * raw.Channels * size * size];
        const int chunk = 1024;
        for (int start = 0; start < raw.Count; start += chunk)
        {
            using var scope = torch.NewDisposeScope();
            int n = Math.Min(chunk, raw.Count - start);
            var part = torch.tensor(raw.Pixels.AsSpan(start * raw.ImageBytes, n * raw.ImageBytes).ToArray(),
                new long[] { n, raw.Channels, raw.Height, raw.Width }, ScalarType.Byte).to(ScalarType.Float32);
            bool down = size < raw.Height || size < raw.Width;
            var resized = nn.functional.interpolate(part, new long[] { size, size }, mode: InterpolationMode.Bicubic,
                align_corners: false, antialias: down);
            var bytes = resized.round().clamp(0, 255).to(ScalarType.Byte).contiguous().bytes.ToArray();
            Buffer.BlockCopy(bytes, 0, outPx, start * raw.Channels * size * size, bytes.Length);
        }
        return raw with { Pixels = outPx, Height = size, Width = size };
    }

    /// <summary>Bytes to normalised float32 [N, C, H, W]: (x / 255 - mean) / std.</summary>
    public static Tensor Normalize(Tensor bytes, Normalization norm)
    {
        long c = bytes.shape[1];
        if (norm.Mean.Length != c || norm.Std.Length != c)
            throw new ArgumentException($"normalisation has {norm.Mean.Length} channels, images have {c}");
        using var scope = torch.NewDisposeScope();
        var mean = torch.tensor(norm.Mean.Select(m => (float)m).ToArray()).reshape(1, c, 1, 1);
        var std = torch.tensor(norm.Std.Select(s => (float)s).ToArray()).reshape(1, c, 1, 1);
        return bytes.to(ScalarType.Float32).div_(255f).sub_(mean).div_(std).MoveToOuterDisposeScope();
    }

    /// <summary>Raw images to a model-ready ImageSet (RGB, size x size, normalised).</summary>
    public static ImageSet ToImageSet(RawImages raw, string name, int size = 32, Normalization? norm = null)
    {
        var rgb = Resize(ToRgb(raw), size);
        using var bytes = ToByteTensor(rgb);
        var images = Normalize(bytes, norm ?? Normalization.Half);
        return new ImageSet(images, torch.tensor(rgb.Labels, ScalarType.Int64), rgb.NumClasses, name);
    }
}
