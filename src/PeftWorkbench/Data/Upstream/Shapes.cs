using SkiaSharp;

namespace PeftWorkbench.Data.Upstream;

/// <summary>
/// Shape classes: regular polygons with 3..8 sides, a circle, a five-point star, a cross and a ring (10 classes),
/// filled or outlined, at a random size, place, rotation and aspect, drawn by SkiaSharp.
/// </summary>
public sealed class Shapes : IUpstreamSource
{
    public string Name => "shapes";
    public int NumClasses => 10;

    public int Draw(Rng rng, int cls, int size, Span<byte> chw)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Gray8, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.Black);
        double r = rng.Uniform(0.22, 0.42) * size;
        canvas.Translate((float)(size / 2.0 + rng.Uniform(-0.15, 0.15) * size), (float)(size / 2.0 + rng.Uniform(-0.15, 0.15) * size));
        canvas.RotateDegrees((float)rng.Uniform(0, 360));
        canvas.Scale((float)rng.Uniform(0.8, 1.2), 1);
        bool outline = cls != 9 && rng.Chance(0.3);
        using var paint = new SKPaint
        {
            Color = SKColors.White, IsAntialias = true,
            Style = outline ? SKPaintStyle.Stroke : SKPaintStyle.Fill, StrokeWidth = (float)rng.Uniform(1.2, 2.5),
        };
        using var path = new SKPath();
        switch (cls)
        {
            case < 6: Polygon(path, cls + 3, r, 0); break;
            case 6: path.AddCircle(0, 0, (float)r); break;
            case 7: Star(path, r); break;
            case 8:
                float a = (float)r, b = (float)(r * rng.Uniform(0.25, 0.4));
                path.AddRect(new SKRect(-a, -b, a, b)); path.AddRect(new SKRect(-b, -a, b, a));
                path.FillType = SKPathFillType.Winding; break;
            default:
                path.AddCircle(0, 0, (float)r); path.AddCircle(0, 0, (float)(r * rng.Uniform(0.45, 0.7)));
                path.FillType = SKPathFillType.EvenOdd; break;
        }
        canvas.DrawPath(path, paint);
        canvas.Flush();
        var px = bitmap.GetPixelSpan();
        var mask = new float[size * size];
        for (int p = 0; p < mask.Length; p++) mask[p] = px[p] / 255f;
        Palette.Paint(rng, mask, size, chw);
        return cls;
    }

    static void Polygon(SKPath path, int sides, double r, double start)
    {
        for (int i = 0; i < sides; i++)
        {
            double t = start + 2 * Math.PI * i / sides;
            var pt = new SKPoint((float)(r * Math.Cos(t)), (float)(r * Math.Sin(t)));
            if (i == 0) path.MoveTo(pt); else path.LineTo(pt);
        }
        path.Close();
    }

    static void Star(SKPath path, double r)
    {
        for (int i = 0; i < 10; i++)
        {
            double t = Math.PI * i / 5, rr = i % 2 == 0 ? r : r * 0.42;
            var pt = new SKPoint((float)(rr * Math.Cos(t)), (float)(rr * Math.Sin(t)));
            if (i == 0) path.MoveTo(pt); else path.LineTo(pt);
        }
        path.Close();
    }
}
