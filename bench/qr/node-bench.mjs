// The npm `qrcode` package's rate for the same job: toBuffer, error correction H, width 300,
// no logo, a fresh scan URL each time. Prints one JSON object.
import QRCode from "qrcode";

const seconds = Number(process.env.QR_BENCH_SECONDS || 3);
const urls = Array.from({ length: 4096 }, (_, i) => {
  const random = (BigInt(i) * 0x9e3779b97f4a7c15f39cc0605cedc835n)
    .toString(16)
    .padStart(32, "0")
    .slice(-32);
  return `https://login.example.com/q/${random}`;
});
const options = { errorCorrectionLevel: "H", width: 300, type: "png" };

for (let i = 0; i < 200; i++) await QRCode.toBuffer(urls[i], options);

let count = 0;
let bytes = 0;
const start = process.hrtime.bigint();
const budget = BigInt(Math.round(seconds * 1e9));
while (process.hrtime.bigint() - start < budget) {
  for (let i = 0; i < 16; i++) {
    const buf = await QRCode.toBuffer(urls[count % urls.length], options);
    bytes += buf.length;
    count++;
  }
}
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
console.log(
  JSON.stringify({
    name: "npm_qrcode_png_300",
    renders: count,
    per_sec: Math.round(count / elapsed),
    micros_each: Number(((elapsed * 1e6) / count).toFixed(1)),
    avg_bytes: Math.round(bytes / count),
  }),
);
