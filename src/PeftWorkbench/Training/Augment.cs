using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>
/// Training-time augmentation on a batch [B, C, H, W], drawn from the run's seeded generator (same seed, same
/// crops): torchvision's RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3, ten tries then the whole image) resized
/// back to H x W bicubically, then flips. The study's many-shot recipes (cifar100.py:12-16, resisc.py:24-30).
/// </summary>
public static class Augment
{
    const int Tries = 10;

    public static Tensor Apply(Tensor x, ImageAugment kind, Generator gen)
    {
        if (kind == ImageAugment.None) return x;
        if (x.dim() != 4) throw new ArgumentException($"Augment: expected images [B, C, H, W], got [{string.Join(", ", x.shape)}].");
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        // Per sample: Tries x (area, log-ratio, top, left) + two flips.
        int per = Tries * 4 + 2;
        using var drawn = torch.rand(b * per, generator: gen, dtype: ScalarType.Float64);
        var u = drawn.data<double>().ToArray();
        var outs = new Tensor[b];
        for (long i = 0; i < b; i++)
        {
            int o = (int)(i * per);
            var (top, left, ch, cw) = CropBox(h, w, u.AsSpan(o, Tries * 4));
            var crop = x[i].narrow(1, top, ch).narrow(2, left, cw).unsqueeze(0);
            var img = ch == h && cw == w ? crop
                : nn.functional.interpolate(crop, new[] { h, w }, mode: InterpolationMode.Bicubic, align_corners: false);
            if (u[o + Tries * 4] < 0.5) img = img.flip(3);
            if (kind == ImageAugment.CropFlipVFlip && u[o + Tries * 4 + 1] < 0.5) img = img.flip(2);
            outs[i] = img;
        }
        return torch.cat(outs, 0);
    }

    /// <summary>torchvision's RandomResizedCrop.get_params with uniform draws from <paramref name="u"/>.</summary>
    static (long Top, long Left, long H, long W) CropBox(long h, long w, ReadOnlySpan<double> u)
    {
        double area = h * w, logLo = Math.Log(3.0 / 4), logHi = Math.Log(4.0 / 3);
        for (int t = 0; t < Tries; t++)
        {
            double target = area * (0.08 + u[4 * t] * (1 - 0.08));
            double ratio = Math.Exp(logLo + u[4 * t + 1] * (logHi - logLo));
            long cw = (long)Math.Round(Math.Sqrt(target * ratio)), ch = (long)Math.Round(Math.Sqrt(target / ratio));
            if (cw > 0 && ch > 0 && cw <= w && ch <= h)
                return ((long)(u[4 * t + 2] * (h - ch + 1)), (long)(u[4 * t + 3] * (w - cw + 1)), ch, cw);
        }
        return (0, 0, h, w); // square images: torchvision's fallback is the whole image
    }
}
