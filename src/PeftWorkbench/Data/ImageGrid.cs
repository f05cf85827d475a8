using SkiaSharp;

namespace PeftWorkbench.Data;

/// <summary>Writes a grid of images as one PNG: a quick look at a task (`peft data preview`, notebooks).</summary>
public static class ImageGrid
{
    public static byte[] Png(RawImages images, int count = 64, int columns = 16, int scale = 2)
    {
        var rgb = Transforms.ToRgb(images);
        int n = Math.Min(count, rgb.Count), cols = Math.Max(1, Math.Min(columns, n)), rows = (n + cols - 1) / cols;
        int h = rgb.Height, w = rgb.Width, hw = h * w;
        using var bitmap = new SKBitmap(new SKImageInfo(cols * (w + 1) * scale, Math.Max(1, rows) * (h + 1) * scale, SKColorType.Rgba8888, SKAlphaType.Opaque));
        bitmap.Erase(SKColors.White);
        for (int i = 0; i < n; i++)
        {
            int ox = (i % cols) * (w + 1) * scale, oy = (i / cols) * (h + 1) * scale, b = i * 3 * hw;
            for (int y = 0; y < h * scale; y++)
                for (int x = 0; x < w * scale; x++)
                {
                    int p = (y / scale) * w + x / scale;
                    bitmap.SetPixel(ox + x, oy + y, new SKColor(rgb.Pixels[b + p], rgb.Pixels[b + hw + p], rgb.Pixels[b + 2 * hw + p]));
                }
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    public static void SavePng(RawImages images, string path, int count = 64, int columns = 16, int scale = 2) =>
        File.WriteAllBytes(path, Png(images, count, columns, scale));
}
