using SkiaSharp;

namespace PeftWorkbench.Data;

/// <summary>
/// dSprites-like: one white shape (square, ellipse, heart) on black, with scale, orientation and x/y position
/// drawn independently as in dSprites. "location" predicts the x position bin, "orientation" the angle bin;
/// the other factors are nuisances. 16 bins each, as VTAB's dsprites_loc / dsprites_ori.
/// </summary>
public sealed class DSpritesTask : IProceduralTask
{
    public enum Target { Location, Orientation }
    public sealed record Factors(int Shape, double Scale, double AngleDeg, double X, double Y);

    public const int Bins = 16;
    readonly Target target;
    public DSpritesTask(Target target) { this.target = target; }
    public string Name => target == Target.Location ? "dsprites-loc" : "dsprites-ori";
    public int NumClasses => Bins;

    /// <summary>dSprites' grid: 3 shapes, 6 scales, 40 orientations, 32 x 32 positions (x, y in 0..1).</summary>
    public static Factors Sample(Rng rng) =>
        new(rng.Next(3), 0.5 + 0.1 * rng.Next(6), rng.Next(40) * 360.0 / 40, rng.Next(32) / 31.0, rng.Next(32) / 31.0);

    public int Label(Factors f) => target == Target.Location
        ? Math.Min((int)(f.X * Bins), Bins - 1)
        : Math.Min((int)(f.AngleDeg / 360.0 * Bins), Bins - 1);

    /// <summary>The shape's centre in pixels: positions span the frame with a margin so the shape stays inside, as in dSprites.</summary>
    public static (float Cx, float Cy) Center(Factors f, int size) =>
        ((float)(size * (0.22 + 0.56 * f.X)), (float)(size * (0.22 + 0.56 * f.Y)));

    public void DrawFactors(Surface s, Factors f)
    {
        s.Reset(SKColors.Black);
        var (cx, cy) = Center(f, s.Size);
        float r = (float)(f.Scale * s.Size * 0.2);
        s.Canvas.Translate(cx, cy);
        s.Canvas.RotateDegrees((float)f.AngleDeg);
        using var paint = new SKPaint { Color = SKColors.White, IsAntialias = true, Style = SKPaintStyle.Fill };
        switch (f.Shape)
        {
            case 0: s.Canvas.DrawRect(-r * 0.8f, -r * 0.8f, 1.6f * r, 1.6f * r, paint); break;
            case 1: s.Canvas.DrawOval(0, 0, r, r * 0.55f, paint); break;
            default:
                using (var path = new SKPath())
                {
                    // A heart pointing along -y at angle 0: two lobes and a tip, so every orientation is distinct.
                    path.MoveTo(0, r);
                    path.CubicTo(-1.3f * r, 0, -0.9f * r, -1.1f * r, 0, -0.45f * r);
                    path.CubicTo(0.9f * r, -1.1f * r, 1.3f * r, 0, 0, r);
                    path.Close();
                    s.Canvas.DrawPath(path, paint);
                }
                break;
        }
    }

    public int Draw(Surface s, Rng rng, Span<byte> chw)
    {
        var f = Sample(rng);
        DrawFactors(s, f);
        s.CopyTo(chw);
        return Label(f);
    }
}

/// <summary>
/// CLEVR-like scenes: 3 to 8 objects (sphere, cube, cylinder; 8 colours; matte or metal; small or large) on a
/// grey floor seen in perspective, with random lighting. "count" predicts the number of objects (6 classes);
/// "distance" predicts the depth bin of the closest object (6 classes, as VTAB's clevr_dist).
/// </summary>
public sealed class ClevrTask : IProceduralTask
{
    public enum Target { Count, Distance }
    public sealed record Obj(int Shape, int Color, bool Metal, double Radius, double X, double Z);
    public sealed record Scene(IReadOnlyList<Obj> Objects, double LightX, double FloorTone);

    public const int MinObjects = 3, MaxObjects = 8, DistanceBins = 6;
    public const double NearZ = 4.0, FarZ = 10.0;
    /// <summary>Closest-object depth bin edges (world units), equal steps from NearZ to 7.0; later objects can be deeper.</summary>
    public static readonly double[] DistanceEdges = { 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0 };
    static readonly SKColor[] Colors =
    {
        new(87, 87, 87), new(173, 35, 35), new(42, 75, 215), new(29, 105, 20),
        new(129, 74, 25), new(129, 38, 192), new(41, 208, 208), new(255, 238, 51),
    };

    readonly Target target;
    public ClevrTask(Target target) { this.target = target; }
    public string Name => target == Target.Count ? "clevr-count" : "clevr-dist";
    public int NumClasses => target == Target.Count ? MaxObjects - MinObjects + 1 : DistanceBins;

    /// <summary>
    /// Samples a scene whose label is uniform: the count (or closest-depth bin) is drawn first, then objects
    /// are placed without overlapping on screen so every one stays visible.
    /// </summary>
    public Scene Sample(Rng rng)
    {
        int n = MinObjects + rng.Next(MaxObjects - MinObjects + 1);
        int distBin = rng.Next(DistanceBins);
        var objs = new List<Obj>();
        for (int attempt = 0; objs.Count < n && attempt < 500; attempt++)
        {
            double z = objs.Count == 0 && target == Target.Distance
                ? rng.Uniform(DistanceEdges[distBin], DistanceEdges[distBin + 1])
                : rng.Uniform(target == Target.Distance ? DistanceEdges[distBin + 1] : NearZ, FarZ);
            double radius = rng.Chance(0.5) ? 0.3 : 0.5;
            double xMax = 0.27 * z - radius;
            var o = new Obj(rng.Next(3), rng.Next(Colors.Length), rng.Chance(0.4), radius, rng.Uniform(-xMax, xMax), z);
            if (objs.All(p => !Overlap(p, o))) objs.Add(o);
            else if (objs.Count == 0 && attempt > 100) objs.Add(o);
        }
        if (objs.Count < n) return Sample(rng); // rare: a crowded draw; try a new scene
        return new Scene(objs, rng.Uniform(-1, 1), rng.Uniform(0.45, 0.7));
    }

    // Screen-space separation so no object hides another (CLEVR also rejects scenes with hidden objects).
    static bool Overlap(Obj a, Obj b)
    {
        var (ax, ay, ar) = Project(a, 32); var (bx, by, br) = Project(b, 32);
        double d = Math.Sqrt((ax - bx) * (ax - bx) + (ay - by) * (ay - by));
        return d < 1.05 * (ar + br) + 0.5;
    }

    const double Focal = 1.6, CameraHeight = 2.0, Horizon = 0.15;

    /// <summary>Screen centre and radius (pixels) of an object resting on the floor.</summary>
    public static (double X, double Y, double R) Project(Obj o, int size)
    {
        double f = Focal * size;
        double groundY = Horizon * size + f * CameraHeight / o.Z;
        double r = f * o.Radius / o.Z;
        return (size / 2.0 + f * o.X / o.Z, groundY - r, r);
    }

    public int Label(Scene s) => target == Target.Count
        ? s.Objects.Count - MinObjects
        : Math.Clamp(Array.FindLastIndex(DistanceEdges, e => e <= s.Objects.Min(o => o.Z)), 0, DistanceBins - 1);

    public void DrawScene(Surface surf, Scene scene)
    {
        int size = surf.Size;
        var c = surf.Canvas;
        byte tone = (byte)(scene.FloorTone * 255);
        surf.Reset(new SKColor(tone, tone, tone));
        // Floor: lighter towards the camera, a soft horizon.
        using (var floor = new SKPaint())
        {
            floor.Shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(0, size),
                new[] { new SKColor((byte)(tone * 0.8), (byte)(tone * 0.8), (byte)(tone * 0.82)), new SKColor((byte)Math.Min(255, tone * 1.25), (byte)Math.Min(255, tone * 1.25), (byte)Math.Min(255, tone * 1.25)) },
                SKShaderTileMode.Clamp);
            c.DrawRect(0, 0, size, size, floor);
        }
        foreach (var o in scene.Objects.OrderByDescending(o => o.Z))
        {
            var (x, y, r) = Project(o, size);
            var col = Colors[o.Color];
            using var shadow = new SKPaint { Color = new SKColor(0, 0, 0, 70), IsAntialias = true };
            c.DrawOval((float)(x + scene.LightX * r * 0.6), (float)(y + r * 0.95), (float)(r * 1.05), (float)(r * 0.3), shadow);
            var light = new SKPoint((float)(x + scene.LightX * r * 0.5), (float)(y - r * 0.5));
            using var paint = new SKPaint { IsAntialias = true };
            paint.Shader = SKShader.CreateRadialGradient(light, (float)(r * 1.8),
                new[] { Lighten(col, o.Metal ? 0.75 : 0.3), col, Darken(col, 0.45) }, new[] { 0f, 0.45f, 1f }, SKShaderTileMode.Clamp);
            switch (o.Shape)
            {
                case 0: c.DrawCircle((float)x, (float)y, (float)r, paint); break;
                case 1:
                    float h = (float)(r * 0.85);
                    c.DrawRect((float)x - h, (float)y - h, 2 * h, 2 * h, paint);
                    using (var top = new SKPaint { Color = Lighten(col, 0.25), IsAntialias = true })
                    using (var path = new SKPath())
                    {
                        path.MoveTo((float)x - h, (float)y - h); path.LineTo((float)x - h * 0.6f, (float)y - h * 1.35f);
                        path.LineTo((float)x + h * 1.4f, (float)y - h * 1.35f); path.LineTo((float)x + h, (float)y - h); path.Close();
                        c.DrawPath(path, top);
                    }
                    break;
                default:
                    float w = (float)(r * 0.8);
                    c.DrawRect((float)x - w, (float)(y - r * 0.7), 2 * w, (float)(r * 1.6), paint);
                    using (var top = new SKPaint { Color = Lighten(col, 0.3), IsAntialias = true })
                        c.DrawOval((float)x, (float)(y - r * 0.7), w, (float)(r * 0.3), top);
                    break;
            }
            if (o.Metal)
                using (var spec = new SKPaint { Color = new SKColor(255, 255, 255, 200), IsAntialias = true })
                    c.DrawCircle(light.X, light.Y + (float)(r * 0.15), (float)Math.Max(0.6, r * 0.22), spec);
        }
    }

    static SKColor Lighten(SKColor c, double t) => new((byte)(c.Red + (255 - c.Red) * t), (byte)(c.Green + (255 - c.Green) * t), (byte)(c.Blue + (255 - c.Blue) * t));
    static SKColor Darken(SKColor c, double t) => new((byte)(c.Red * (1 - t)), (byte)(c.Green * (1 - t)), (byte)(c.Blue * (1 - t)));

    public int Draw(Surface s, Rng rng, Span<byte> chw)
    {
        var scene = Sample(rng);
        DrawScene(s, scene);
        s.CopyTo(chw);
        Surface.AddNoise(chw, rng, 3);
        return Label(scene);
    }
}

/// <summary>
/// smallNORB-like: grey renderings of five toy categories (animal, human, airplane, truck, car) built from
/// boxes, each with varied proportions (NORB's instances), seen at 18 azimuths (0-340 deg, step 20) and
/// 9 elevations (30-70 deg, step 5) under 6 lighting directions. "azimuth" predicts the azimuth (18 classes),
/// "elevation" the elevation (9 classes); category, instance, lighting and the other angle are nuisances.
/// </summary>
public sealed class NorbTask : IProceduralTask
{
    public enum Target { Azimuth, Elevation }
    public sealed record Factors(int Category, double[] Proportions, int Azimuth, int Elevation, int Lighting, double Scale);

    public const int Azimuths = 18, Elevations = 9, Lightings = 6, Categories = 5;
    readonly Target target;
    public NorbTask(Target target) { this.target = target; }
    public string Name => target == Target.Azimuth ? "smallnorb-azi" : "smallnorb-ele";
    public int NumClasses => target == Target.Azimuth ? Azimuths : Elevations;

    public static Factors Sample(Rng rng) => new(rng.Next(Categories),
        Enumerable.Range(0, 4).Select(_ => rng.Uniform(0.8, 1.25)).ToArray(), rng.Next(Azimuths), rng.Next(Elevations), rng.Next(Lightings), rng.Uniform(0.9, 1.1));

    public int Label(Factors f) => target == Target.Azimuth ? f.Azimuth : f.Elevation;
    public static double AzimuthDeg(Factors f) => 20.0 * f.Azimuth;
    public static double ElevationDeg(Factors f) => 30.0 + 5.0 * f.Elevation;

    // Boxes (centre x, y, z; half sizes) per category, x forward, y up; asymmetric front/back so azimuth is visible.
    static (double cx, double cy, double cz, double hx, double hy, double hz)[] Parts(Factors f)
    {
        var p = f.Proportions;
        return f.Category switch
        {
            0 => new[] { (0.0, 0.45, 0.0, 0.55 * p[0], 0.2, 0.22), (0.6 * p[0], 0.7, 0.0, 0.18, 0.16 * p[1], 0.14), // animal: body, head
                         (0.4, 0.15, 0.15, 0.06, 0.15, 0.06), (0.4, 0.15, -0.15, 0.06, 0.15, 0.06), (-0.4, 0.15, 0.15, 0.06, 0.15, 0.06), (-0.4, 0.15, -0.15, 0.06, 0.15, 0.06),
                         (-0.62 * p[0], 0.55, 0.0, 0.12 * p[2], 0.04, 0.04) },
            1 => new[] { (0.0, 0.35, 0.1, 0.08, 0.35, 0.07), (0.0, 0.35, -0.1, 0.08, 0.35, 0.07), (0.0, 0.95, 0.0, 0.12, 0.3 * p[0], 0.22), // human: legs, torso
                         (0.0, 1.4, 0.0, 0.11 * p[1], 0.12, 0.1), (0.15, 1.05, 0.3, 0.2 * p[2], 0.05, 0.05), (0.0, 0.95, -0.3, 0.05, 0.25, 0.05) },
            2 => new[] { (0.0, 0.4, 0.0, 0.75 * p[0], 0.1, 0.1), (0.1, 0.4, 0.0, 0.15, 0.03, 0.7 * p[1]), (-0.65 * p[0], 0.55, 0.0, 0.08, 0.18, 0.03), // airplane
                         (-0.65 * p[0], 0.42, 0.0, 0.07, 0.02, 0.25), (0.78 * p[0], 0.4, 0.0, 0.06, 0.06, 0.06) },
            3 => new[] { (-0.2, 0.4, 0.0, 0.5 * p[0], 0.3 * p[1], 0.28), (0.55, 0.3, 0.0, 0.2, 0.2 * p[2], 0.26), // truck: cargo box, cab
                         (0.4, 0.1, 0.28, 0.1, 0.1, 0.03), (-0.4, 0.1, 0.28, 0.1, 0.1, 0.03), (0.4, 0.1, -0.28, 0.1, 0.1, 0.03), (-0.4, 0.1, -0.28, 0.1, 0.1, 0.03) },
            _ => new[] { (0.0, 0.22, 0.0, 0.6 * p[0], 0.12, 0.26), (-0.1, 0.42, 0.0, 0.3 * p[1], 0.1 * p[2], 0.22), // car: body, cabin set back
                         (0.4, 0.1, 0.27, 0.09, 0.09, 0.03), (-0.4, 0.1, 0.27, 0.09, 0.09, 0.03), (0.4, 0.1, -0.27, 0.09, 0.09, 0.03), (-0.4, 0.1, -0.27, 0.09, 0.09, 0.03),
                         (0.62 * p[0], 0.25, 0.0, 0.03, 0.04, 0.2 * p[3]) },
        };
    }

    public void DrawFactors(Surface s, Factors f, Rng rng)
    {
        int size = s.Size;
        byte bgTone = (byte)rng.Uniform(150, 200);
        s.Reset(new SKColor(bgTone, bgTone, bgTone));
        double az = AzimuthDeg(f) * Math.PI / 180, el = ElevationDeg(f) * Math.PI / 180;
        double lightAz = f.Lighting * Math.PI / 3;
        var light = Normalize((Math.Cos(lightAz) * 0.6, 0.8, Math.Sin(lightAz) * 0.6));
        var faces = new List<(double depth, SKPoint[] pts, double shade)>();
        double scale = size * 0.44 * f.Scale;
        foreach (var (cx, cy, cz, hx, hy, hz) in Parts(f))
        {
            var corners = new (double x, double y, double z)[8];
            for (int i = 0; i < 8; i++)
                corners[i] = (cx + ((i & 1) == 0 ? -hx : hx), cy + ((i & 2) == 0 ? -hy : hy) - 0.5, cz + ((i & 4) == 0 ? -hz : hz));
            int[][] quads = { new[] { 0, 2, 3, 1 }, new[] { 4, 5, 7, 6 }, new[] { 0, 1, 5, 4 }, new[] { 2, 6, 7, 3 }, new[] { 0, 4, 6, 2 }, new[] { 1, 3, 7, 5 } };
            (double, double, double)[] normals = { (0, 0, -1), (0, 0, 1), (0, -1, 0), (0, 1, 0), (-1, 0, 0), (1, 0, 0) };
            for (int q = 0; q < 6; q++)
            {
                var n = Rotate(normals[q], az, el);
                if (n.z <= 0) continue; // faces away from the camera (camera looks along -z in view space)
                var world = normals[q];
                double shade = 0.35 + 0.65 * Math.Max(0, Dot(Normalize(world), light));
                var pts = quads[q].Select(k => Rotate(corners[k], az, el)).ToArray();
                faces.Add((pts.Average(p => p.z), pts.Select(p => new SKPoint((float)(size / 2.0 + scale * p.x), (float)(size / 2.0 - scale * p.y))).ToArray(), shade));
            }
        }
        foreach (var face in faces.OrderBy(x => x.depth))
        {
            byte g = (byte)Math.Clamp(face.shade * 230, 0, 255);
            using var paint = new SKPaint { Color = new SKColor(g, g, g), IsAntialias = true, Style = SKPaintStyle.Fill };
            using var path = new SKPath();
            path.AddPoly(face.pts, true);
            s.Canvas.DrawPath(path, paint);
        }
    }

    // Object rotated by azimuth about the vertical axis, then viewed from the given elevation.
    static (double x, double y, double z) Rotate((double x, double y, double z) p, double az, double el)
    {
        double x1 = p.x * Math.Cos(az) - p.z * Math.Sin(az), z1 = p.x * Math.Sin(az) + p.z * Math.Cos(az);
        double y2 = p.y * Math.Cos(el) - z1 * Math.Sin(el), z2 = p.y * Math.Sin(el) + z1 * Math.Cos(el);
        return (x1, y2, z2);
    }
    static double Dot((double x, double y, double z) a, (double x, double y, double z) b) => a.x * b.x + a.y * b.y + a.z * b.z;
    static (double x, double y, double z) Normalize((double x, double y, double z) a) { double l = Math.Sqrt(Dot(a, a)); return (a.x / l, a.y / l, a.z / l); }

    public int Draw(Surface s, Rng rng, Span<byte> chw)
    {
        var f = Sample(rng);
        DrawFactors(s, f, rng);
        s.CopyTo(chw);
        Surface.AddNoise(chw, rng, 4);
        return Label(f);
    }
}
