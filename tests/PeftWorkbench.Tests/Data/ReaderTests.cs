using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using PeftWorkbench.Data;

namespace PeftWorkbench.Tests.Data;

public class ReaderTests
{
    static void WriteGz(string path, byte[] bytes)
    {
        using var fs = File.Create(path);
        using var gz = new GZipStream(fs, CompressionLevel.Fastest);
        gz.Write(bytes);
    }

    static byte[] Idx(int[] dims, byte[] data, byte type = 0x08)
    {
        var header = new byte[4 + 4 * dims.Length];
        header[2] = type; header[3] = (byte)dims.Length;
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), dims[i]);
        return header.Concat(data).ToArray();
    }

    [Fact]
    public void Idx_gz_images_and_labels_round_trip()
    {
        using var dir = new TempDir();
        var pixels = Enumerable.Range(0, 3 * 4 * 5).Select(i => (byte)(i * 4)).ToArray();
        WriteGz(dir.File("img.gz"), Idx(new[] { 3, 4, 5 }, pixels));
        WriteGz(dir.File("lab.gz"), Idx(new[] { 3 }, new byte[] { 2, 0, 9 }));
        var raw = IdxReader.ReadImages(dir.File("img.gz"), dir.File("lab.gz"), 10);
        Assert.Equal(3, raw.Count);
        Assert.Equal((1, 4, 5), (raw.Channels, raw.Height, raw.Width));
        Assert.Equal(new long[] { 2, 0, 9 }, raw.Labels);
        Assert.Equal(pixels, raw.Pixels);
    }

    [Fact]
    public void Idx_errors_name_the_file_and_the_fault()
    {
        using var dir = new TempDir();
        WriteGz(dir.File("magic.gz"), new byte[] { 1, 0, 8, 1, 0, 0, 0, 0 });
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(dir.File("magic.gz")));
        Assert.Contains("magic.gz", e.Message); Assert.Contains("magic", e.Message);

        WriteGz(dir.File("short.gz"), Idx(new[] { 2, 3, 3 }, new byte[10]));
        e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(dir.File("short.gz")));
        Assert.Contains("short.gz", e.Message); Assert.Contains("18", e.Message);

        File.WriteAllBytes(dir.File("notgzip.gz"), Encoding.ASCII.GetBytes("definitely not gzip data"));
        e = Assert.Throws<InvalidDataException>(() => IdxReader.Read(dir.File("notgzip.gz")));
        Assert.Contains("notgzip.gz", e.Message);

        WriteGz(dir.File("img.gz"), Idx(new[] { 2, 2, 2 }, new byte[8]));
        WriteGz(dir.File("lab.gz"), Idx(new[] { 2 }, new byte[] { 1, 12 }));
        e = Assert.Throws<InvalidDataException>(() => IdxReader.ReadImages(dir.File("img.gz"), dir.File("lab.gz"), 10));
        Assert.Contains("lab.gz", e.Message); Assert.Contains("label 12", e.Message); Assert.Contains("item 1", e.Message);
    }

    static string DigitJson(int images, Func<int, string>? value = null) =>
        "{ \"data\": [\n" + string.Join(",\n", Enumerable.Range(0, images).Select(i =>
            string.Join(",", Enumerable.Range(0, 784).Select(p => value?.Invoke(i * 784 + p) ?? (p % 7 == 0 ? "1" : "0.5"))))) + "\n] }";

    [Fact]
    public void Mnist_json_reads_images_with_the_file_label()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("3.json"), DigitJson(2));
        var raw = MnistJsonReader.ReadDigitFile(dir.File("3.json"), 3);
        Assert.Equal(2, raw.Count);
        Assert.All(raw.Labels, l => Assert.Equal(3, l));
        Assert.Equal(255, raw.Pixels[0]);
        Assert.Equal(128, raw.Pixels[1]);
    }

    [Fact]
    public void Mnist_json_errors_name_file_and_line()
    {
        using var dir = new TempDir();
        // Image 1 (line 3 of the file) has a value above 1.
        File.WriteAllText(dir.File("bad.json"), DigitJson(2, i => i == 784 + 5 ? "1.5" : "0"));
        var e = Assert.Throws<InvalidDataException>(() => MnistJsonReader.ReadDigitFile(dir.File("bad.json"), 1));
        Assert.Contains("bad.json", e.Message); Assert.Contains("line 3", e.Message); Assert.Contains("1.5", e.Message);

        File.WriteAllText(dir.File("broken.json"), "{ \"data\": [0, 0,\n 0, ]x }");
        e = Assert.Throws<InvalidDataException>(() => MnistJsonReader.ReadDigitFile(dir.File("broken.json"), 1));
        Assert.Contains("broken.json", e.Message); Assert.Contains("line 2", e.Message);

        File.WriteAllText(dir.File("odd.json"), "{ \"data\": [0, 0, 0] }");
        e = Assert.Throws<InvalidDataException>(() => MnistJsonReader.ReadDigitFile(dir.File("odd.json"), 1));
        Assert.Contains("odd.json", e.Message); Assert.Contains("not a multiple", e.Message);
    }

    static string DigitsLine(int label, int pixel = 8) => string.Join(",", Enumerable.Repeat(pixel.ToString(CultureInfo.InvariantCulture), 64)) + "," + label;

    [Fact]
    public void Digits_csv_gz_reads_and_scales_to_bytes()
    {
        using var dir = new TempDir();
        WriteGz(dir.File("digits.csv.gz"), Encoding.ASCII.GetBytes(DigitsLine(4, 16) + "\n" + DigitsLine(7, 0) + "\n"));
        var raw = DigitsCsvReader.Read(dir.File("digits.csv.gz"));
        Assert.Equal(new long[] { 4, 7 }, raw.Labels);
        Assert.Equal((1, 8, 8), (raw.Channels, raw.Height, raw.Width));
        Assert.Equal(255, raw.Pixels[0]);
        Assert.Equal(0, raw.Pixels[64]);
    }

    [Theory]
    [InlineData("1,2,3", "line 2", "3 values")]
    [InlineData("LABEL12", "line 2", "label 12")]
    [InlineData("PIXEL17", "line 2", "17")]
    [InlineData("PIXELx", "line 2", "'x'")]
    public void Digits_csv_errors_name_file_and_line(string badLine, string where, string what)
    {
        using var dir = new TempDir();
        string line = badLine switch
        {
            "LABEL12" => DigitsLine(12),
            "PIXEL17" => DigitsLine(3, 17),
            "PIXELx" => "x," + string.Join(",", Enumerable.Repeat("0", 63)) + ",1",
            _ => badLine,
        };
        WriteGz(dir.File("d.csv.gz"), Encoding.ASCII.GetBytes(DigitsLine(1) + "\n" + line + "\n"));
        var e = Assert.Throws<InvalidDataException>(() => DigitsCsvReader.Read(dir.File("d.csv.gz")));
        Assert.Contains("d.csv.gz", e.Message); Assert.Contains(where, e.Message); Assert.Contains(what, e.Message);
    }

    [Fact]
    public void Missing_package_data_says_how_to_install_it()
    {
        var e = Assert.Throws<FileNotFoundException>(() => DataSources.RequireFile("/nonexistent/digits.csv.gz", "scikit-learn digits", "Debian package python3-sklearn"));
        Assert.Contains("python3-sklearn", e.Message);
        Assert.Contains("environment/setup.sh", e.Message);
    }
}
