using SkiaSharp;

namespace PeftWorkbench.Data;

/// <summary>
/// The upstream pre-training data: characters (digits, upper and lower case letters) rendered from the fonts
/// Debian's fonts-* packages install, with varied fonts, sizes, affine transforms, stroke widths, blur,
/// colours, gradients and noise. Classes 0..9 are the digits 0..9, so the pre-trained head's first ten
/// outputs classify handwritten digits zero-shot (the analogue of CLIP's zero-shot head); letters make the
/// task large enough that its features are not digit-specific.
/// </summary>
public sealed class GlyphRenderer : IDisposable
{
    public const string Characters = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    public static int NumClasses => Characters.Length;
    /// <summary>Share of samples drawn from the ten digit classes (the rest spread over the letters).</summary>
    public const double DigitShare = 0.4;

    readonly List<SKTypeface> typefaces;
    public IReadOnlyList<string> FontFiles { get; }

    GlyphRenderer(List<SKTypeface> typefaces, List<string> files) { this.typefaces = typefaces; FontFiles = files; }

    /// <summary>
    /// Every .ttf/.otf under the font folders that has all 62 characters. Symbol and dingbat fonts map the
    /// ASCII codes to pictures, so they are left out by name. Files are sorted so the list (and the data) is
    /// the same on every machine with the same packages.
    /// </summary>
    public static GlyphRenderer FromSystemFonts(IReadOnlyList<string>? dirs = null, int minFonts = 20)
    {
        dirs ??= DataSources.FontDirs;
        var files = dirs.Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*", SearchOption.AllDirectories))
            .Where(f => f.EndsWith(".ttf", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".otf", StringComparison.OrdinalIgnoreCase))
            .Where(f => !System.Text.RegularExpressions.Regex.IsMatch(Path.GetFileName(f), "symbol|dingbat|math|d050000l|emoji|icon", System.Text.RegularExpressions.RegexOptions.IgnoreCase))
            .OrderBy(f => f, StringComparer.Ordinal).ToList();
        var kept = new List<string>();
        var faces = new List<SKTypeface>();
        foreach (var f in files)
        {
            var tf = SKTypeface.FromFile(f);
            if (tf is null) continue;
            if (tf.ContainsGlyphs(Characters) && HasVisibleGlyphs(tf)) { faces.Add(tf); kept.Add(f); }
            else tf.Dispose();
        }
        if (faces.Count < minFonts)
            throw new InvalidOperationException(
                $"found {faces.Count} usable fonts under {string.Join(", ", dirs)} (need {minFonts}); the fonts-* packages in environment/apt-packages.txt provide them: run `{DataSources.SetupCommand}`.");
        return new GlyphRenderer(faces, kept);
    }

    static bool HasVisibleGlyphs(SKTypeface tf)
    {
        using var font = new SKFont(tf, 64);
        foreach (var s in new[] { "0", "8", "A", "g" })
        {
            font.MeasureText(s, out var b);
            if (b.Width < 4 || b.Height < 4) return false;
        }
        return true;
    }

    /// <summary>Renders count labelled RGB images of size x size; the same seed gives the same images.</summary>
    public RawImages Render(int count, ulong seed, int size = 32, string stream = "glyphs")
    {
        var rng = Rng.For(seed, stream);
        var pixels = new byte[(long)count * 3 * size * size];
        var labels = new long[count];
        using var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Gray8, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(bitmap);
        var mask = new float[size * size];
        for (int i = 0; i < count; i++)
        {
            int cls = rng.Chance(DigitShare) ? rng.Next(10) : 10 + rng.Next(NumClasses - 10);
            labels[i] = cls;
            DrawGlyph(canvas, bitmap, rng, typefaces[rng.Next(typefaces.Count)], Characters[cls].ToString(), size, mask);
            Colorize(rng, mask, pixels.AsSpan(i * 3 * size * size, 3 * size * size), size);
        }
        return new RawImages(pixels, labels, 3, size, size, NumClasses, $"glyphs(seed {seed}, {typefaces.Count} fonts)").Validated();
    }

    SKBitmap? oneBitmap; SKCanvas? oneCanvas;

    /// <summary>Draws one image of character class <paramref name="cls"/> (3 x size x size bytes) with the same variation as
    /// <see cref="Render"/>: the broad upstream mix (Data/Upstream) draws its glyph images through here. With
    /// <paramref name="warp"/> above 0, the glyph is also bent by a smooth random displacement field of up to that many
    /// pixels (<see cref="Warp"/>: pen strokes wobble, fonts do not); 0 draws no extra random numbers, so recipes without
    /// it render the same images as before it existed.</summary>
    public void DrawOne(Rng rng, int cls, int size, Span<byte> chw, double warp = 0)
    {
        if (oneBitmap is null || oneBitmap.Width != size)
        {
            oneCanvas?.Dispose(); oneBitmap?.Dispose();
            oneBitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Gray8, SKAlphaType.Opaque));
            oneCanvas = new SKCanvas(oneBitmap);
        }
        var mask = new float[size * size];
        DrawGlyph(oneCanvas!, oneBitmap, rng, typefaces[rng.Next(typefaces.Count)], Characters[cls].ToString(), size, mask);
        if (warp > 0) Warp(rng, mask, size, rng.Uniform(0, warp));
        Colorize(rng, mask, chw, size);
    }

    /// <summary>An elastic distortion (after Simard et al. 2003, on a coarse grid instead of a blurred field): a 4 x 4 grid
    /// of random displacements (standard deviation <paramref name="amplitude"/> pixels) interpolated bilinearly over the
    /// image, and the mask resampled bilinearly at the displaced positions (zero outside).</summary>
    public static void Warp(Rng rng, float[] mask, int size, double amplitude)
    {
        const int g = 4;
        var dx = new double[g * g]; var dy = new double[g * g];
        for (int i = 0; i < g * g; i++) { dx[i] = rng.Normal() * amplitude; dy[i] = rng.Normal() * amplitude; }
        var src = (float[])mask.Clone();
        double cell = (size - 1) / (double)(g - 1);
        static double Lerp2(double[] grid, double gx, double gy)
        {
            int x0 = Math.Min((int)gx, g - 2), y0 = Math.Min((int)gy, g - 2);
            double fx = gx - x0, fy = gy - y0;
            return (1 - fy) * ((1 - fx) * grid[y0 * g + x0] + fx * grid[y0 * g + x0 + 1]) + fy * ((1 - fx) * grid[(y0 + 1) * g + x0] + fx * grid[(y0 + 1) * g + x0 + 1]);
        }
        float At(int x, int y) => x < 0 || y < 0 || x >= size || y >= size ? 0f : src[y * size + x];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                double sx = x + Lerp2(dx, x / cell, y / cell), sy = y + Lerp2(dy, x / cell, y / cell);
                int x0 = (int)Math.Floor(sx), y0 = (int)Math.Floor(sy);
                double fx = sx - x0, fy = sy - y0;
                mask[y * size + x] = (float)((1 - fy) * ((1 - fx) * At(x0, y0) + fx * At(x0 + 1, y0)) + fy * ((1 - fx) * At(x0, y0 + 1) + fx * At(x0 + 1, y0 + 1)));
            }
    }

    /// <summary>A white glyph on black in mask (0..1): random height, aspect, rotation, shear, offset, stroke, blur.</summary>
    static void DrawGlyph(SKCanvas canvas, SKBitmap bitmap, Rng rng, SKTypeface face, string text, int size, float[] mask)
    {
        canvas.ResetMatrix();
        canvas.Clear(SKColors.Black);
        using var font = new SKFont(face, 100) { Subpixel = true, Edging = SKFontEdging.Antialias };
        font.MeasureText(text, out var bounds);
        double targetH = rng.Uniform(0.45, 0.82) * size;
        double scale = targetH / Math.Max(bounds.Height, 1);
        double aspect = rng.Uniform(0.75, 1.25);
        // Keep wide glyphs (W, m) inside the frame.
        double maxW = 0.9 * size;
        if (bounds.Width * scale * aspect > maxW) scale = maxW / (bounds.Width * aspect);
        font.Size = (float)(100 * scale);
        font.ScaleX = (float)aspect;
        font.MeasureText(text, out bounds);
        float stroke = (float)(rng.Chance(0.7) ? rng.Uniform(0, 0.1) * size : 0);
        using var paint = new SKPaint
        {
            Color = SKColors.White, IsAntialias = true,
            Style = stroke > 0 ? SKPaintStyle.StrokeAndFill : SKPaintStyle.Fill, StrokeWidth = stroke,
            StrokeJoin = SKStrokeJoin.Round, StrokeCap = SKStrokeCap.Round,
        };
        if (rng.Chance(0.3)) paint.MaskFilter = SKMaskFilter.CreateBlur(SKBlurStyle.Normal, (float)rng.Uniform(0.3, 1.0));
        float jitter = 0.1f * size;
        canvas.Translate(size / 2f + (float)rng.Uniform(-jitter, jitter), size / 2f + (float)rng.Uniform(-jitter, jitter));
        canvas.RotateDegrees((float)rng.Uniform(-18, 18));
        canvas.Skew((float)rng.Uniform(-0.3, 0.3), 0);
        canvas.DrawText(text, -bounds.MidX, -bounds.MidY, SKTextAlign.Left, font, paint);
        canvas.Flush();
        var span = bitmap.GetPixelSpan();
        for (int p = 0; p < mask.Length; p++) mask[p] = span[p] / 255f;
    }

    /// <summary>
    /// Foreground and background colours, a gradient and noise. About two thirds of the images are light-on-dark grey
    /// (the look of scanned digits), some dark-on-light, the rest random colours with enough contrast.
    /// </summary>
    static void Colorize(Rng rng, float[] mask, Span<byte> rgb, int size)
    {
        double mode = rng.NextDouble();
        var fg = new double[3]; var bg = new double[3];
        if (mode < 0.65) { double b = rng.Uniform(0, 60), f = rng.Uniform(170, 255); for (int c = 0; c < 3; c++) { bg[c] = b; fg[c] = f; } }
        else if (mode < 0.75) { double b = rng.Uniform(170, 255), f = rng.Uniform(0, 80); for (int c = 0; c < 3; c++) { bg[c] = b; fg[c] = f; } }
        else
        {
            do { for (int c = 0; c < 3; c++) { fg[c] = rng.Uniform(0, 255); bg[c] = rng.Uniform(0, 255); } }
            while (Math.Abs(Upstream.Palette.Luma(fg) - Upstream.Palette.Luma(bg)) < 70);
        }
        Upstream.Palette.Composite(rng, mask, fg, bg, size, rgb, maxGradient: 50, maxNoise: 20);
    }

    public void Dispose() { oneCanvas?.Dispose(); oneBitmap?.Dispose(); foreach (var t in typefaces) t.Dispose(); }
}
