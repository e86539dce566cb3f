// carbone's docx -> pdf on every .docx of a folder, one after the other, on one warm LibreOffice.
// Usage: node convert.js <folder>; prints {"documents": n, "seconds": s} (warm-up excluded).
'use strict';
const fs = require('fs');
const path = require('path');
const carbone = require('carbone');

function convert (buffer) {
  return new Promise((resolve, reject) => {
    carbone.convert(buffer, { convertTo : 'pdf', extension : 'docx' }, (err, pdf) => (err ? reject(err) : resolve(pdf)));
  });
}

async function main () {
  const folder = process.argv[2];
  const files = fs.readdirSync(folder).filter((name) => name.endsWith('.docx')).sort();
  const documents = files.map((name) => fs.readFileSync(path.join(folder, name)));
  await convert(documents[0]); // starts carbone's LibreOffice, as a long-lived service would have
  const started = process.hrtime.bigint();
  for (let i = 0; i < documents.length; i++) {
    const pdf = await convert(documents[i]);
    fs.writeFileSync(path.join(folder, files[i].replace(/\.docx$/, '.pdf')), pdf);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify({ documents : documents.length, seconds }) + '\n');
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
