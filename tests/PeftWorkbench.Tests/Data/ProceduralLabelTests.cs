using PeftWorkbench.Data;

namespace PeftWorkbench.Tests.Data;

/// <summary>The label of each structured task must follow from the factor that generated the image, and the image must show it.</summary>
public class ProceduralLabelTests
{
    static byte[] Draw(Action<Surface> draw)
    {
        using var s = new Surface(32);
        draw(s);
        var chw = new byte[3 * 32 * 32];
        s.CopyTo(chw);
        return chw;
    }

    static (double X, double Y) Centroid(byte[] chw, Func<int, bool> isForeground)
    {
        double sx = 0, sy = 0, n = 0;
        for (int p = 0; p < 1024; p++) if (isForeground(p)) { sx += p % 32; sy += p / 32; n++; }
        return (sx / n, sy / n);
    }

    [Fact]
    public void Dsprites_location_label_is_the_x_bin_and_the_shape_sits_there()
    {
        var task = new DSpritesTask(DSpritesTask.Target.Location);
        var rng = new Rng(3);
        for (int i = 0; i < 40; i++)
        {
            var f = DSpritesTask.Sample(rng) with { Shape = 1 }; // ellipse: centroid = centre at any angle
            Assert.Equal(Math.Min((int)(f.X * 16), 15), task.Label(f));
            var img = Draw(s => task.DrawFactors(s, f));
            var (cx, cy) = Centroid(img, p => img[p] > 127);
            var (ex, ey) = DSpritesTask.Center(f, 32);
            Assert.InRange(cx + 0.5, ex - 0.6, ex + 0.6);
            Assert.InRange(cy + 0.5, ey - 0.6, ey + 0.6);
        }
    }

    [Fact]
    public void Dsprites_orientation_label_is_the_angle_bin_and_the_heart_points_that_way()
    {
        var task = new DSpritesTask(DSpritesTask.Target.Orientation);
        for (int k = 0; k < 40; k += 3)
        {
            var f = new DSpritesTask.Factors(2, 1.0, k * 9.0, 0.5, 0.5);
            Assert.Equal((int)(k * 9.0 / 22.5), task.Label(f));
            var img = Draw(s => task.DrawFactors(s, f));
            // The heart's wide upper half (lobes and the broad middle) sits towards the tip's side of its origin here:
            // the (intensity-weighted) centroid lies from the shape's centre towards the tip, which points along +y
            // at angle 0 and turns clockwise on screen with the angle.
            double sx = 0, sy = 0, sw = 0;
            for (int p = 0; p < 1024; p++) { sx += img[p] * (p % 32 + 0.5); sy += img[p] * (p / 32 + 0.5); sw += img[p]; }
            var (ex, ey) = DSpritesTask.Center(f, 32);
            double seen = Math.Atan2(sy / sw - ey, sx / sw - ex) * 180 / Math.PI - 90;
            double diff = ((seen - f.AngleDeg) % 360 + 540) % 360 - 180;
            Assert.True(Math.Abs(diff) < 20, $"angle {f.AngleDeg}: tip at {seen:F0} deg");
        }
    }

    [Fact]
    public void Dsprites_ellipse_major_axis_follows_the_angle()
    {
        var task = new DSpritesTask(DSpritesTask.Target.Orientation);
        for (int k = 0; k < 40; k += 3)
        {
            var f = new DSpritesTask.Factors(1, 1.0, k * 9.0, 0.4, 0.6);
            var img = Draw(s => task.DrawFactors(s, f));
            double m = 0, mx = 0, my = 0;
            for (int p = 0; p < 1024; p++) { m += img[p]; mx += img[p] * (p % 32); my += img[p] * (p / 32); }
            mx /= m; my /= m;
            double cxx = 0, cyy = 0, cxy = 0;
            for (int p = 0; p < 1024; p++) { double dx = p % 32 - mx, dy = p / 32 - my; cxx += img[p] * dx * dx; cyy += img[p] * dy * dy; cxy += img[p] * dx * dy; }
            double axis = 0.5 * Math.Atan2(2 * cxy, cxx - cyy) * 180 / Math.PI;
            double diff = ((axis - f.AngleDeg) % 180 + 270) % 180 - 90;
            Assert.True(Math.Abs(diff) < 8, $"angle {f.AngleDeg}: major axis at {axis:F0} deg");
            Assert.Equal((int)(f.AngleDeg / 22.5), task.Label(f));
        }
    }

    [Fact]
    public void Clevr_count_label_is_the_object_count_and_every_object_is_visible()
    {
        var task = new ClevrTask(ClevrTask.Target.Count);
        var rng = new Rng(5);
        for (int i = 0; i < 25; i++)
        {
            var scene = task.Sample(rng);
            Assert.Equal(scene.Objects.Count - ClevrTask.MinObjects, task.Label(scene));
            var full = Draw(s => task.DrawScene(s, scene));
            var empty = Draw(s => task.DrawScene(s, scene with { Objects = Array.Empty<ClevrTask.Obj>() }));
            foreach (var o in scene.Objects)
            {
                var (x, y, _) = ClevrTask.Project(o, 32);
                int p = (int)Math.Clamp(y, 0, 31) * 32 + (int)Math.Clamp(x, 0, 31);
                int change = Math.Abs(full[p] - empty[p]) + Math.Abs(full[1024 + p] - empty[1024 + p]) + Math.Abs(full[2048 + p] - empty[2048 + p]);
                Assert.True(change > 20, $"object at ({x:F1}, {y:F1}) not visible");
            }
        }
    }

    [Fact]
    public void Clevr_distance_label_is_the_closest_depth_bin_and_the_closest_object_is_lowest_on_screen()
    {
        var task = new ClevrTask(ClevrTask.Target.Distance);
        var rng = new Rng(6);
        var seen = new HashSet<int>();
        for (int i = 0; i < 40; i++)
        {
            var scene = task.Sample(rng);
            double zMin = scene.Objects.Min(o => o.Z);
            int label = task.Label(scene);
            seen.Add(label);
            Assert.InRange(zMin, ClevrTask.DistanceEdges[label], ClevrTask.DistanceEdges[label + 1]);
            var closest = scene.Objects.MinBy(o => o.Z)!;
            double Floor(ClevrTask.Obj o) { var (_, y, r) = ClevrTask.Project(o, 32); return y + r; }
            Assert.Equal(scene.Objects.Max(Floor), Floor(closest), 6);
        }
        Assert.True(seen.Count >= 5);
    }

    [Fact]
    public void Norb_labels_are_the_pose_and_the_pose_changes_the_image()
    {
        var azi = new NorbTask(NorbTask.Target.Azimuth);
        var ele = new NorbTask(NorbTask.Target.Elevation);
        var rng = new Rng(8);
        for (int i = 0; i < 10; i++)
        {
            var f = NorbTask.Sample(rng);
            Assert.Equal(f.Azimuth, azi.Label(f));
            Assert.Equal(f.Elevation, ele.Label(f));
            byte[] Img(NorbTask.Factors g) => Draw(s => azi.DrawFactors(s, g, new Rng(1)));
            var baseImg = Img(f);
            Assert.NotEqual(baseImg, Img(f with { Azimuth = (f.Azimuth + 9) % 18 }));
            Assert.NotEqual(baseImg, Img(f with { Elevation = (f.Elevation + 4) % 9 }));
            Assert.Equal(baseImg, Img(f));
        }
    }

    [Fact]
    public void Every_procedural_class_occurs_in_train800val200()
    {
        foreach (var t in Suite.Mini.Tasks.Where(t => t.Source.StartsWith("procedural")))
        {
            var raw = Suite.Mini.LoadRaw(t.Name, "train800val200");
            Assert.Equal(t.NumClasses, raw.Labels.Distinct().Count());
        }
    }
}
