// Parse an AsyncAPI document with the official parser; print its diagnostics as JSON, one object.
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';

const { document, diagnostics } = await new Parser().parse(readFileSync(process.argv[2], 'utf8'));
const severities = ['error', 'warning', 'information', 'hint'];
console.log(JSON.stringify({
  valid: document !== undefined,
  diagnostics: diagnostics.map((d) => ({
    severity: severities[d.severity], code: d.code, path: d.path.join('/'), message: d.message,
  })),
}));
