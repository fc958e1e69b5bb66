// JSON-schema validation of requests. Bodies are validated as sent (no type coercion: a string
// where a number belongs is an error); query strings and path params are coerced, since they
// arrive as text, and a single query value becomes a one-element array where an array is expected.
import AjvModule from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

const Ajv = AjvModule.default ?? AjvModule;
const addFormats = (addFormatsModule as any).default ?? addFormatsModule;

function makeAjv(coerceTypes: false | 'array') {
  const ajv = new Ajv({
    allErrors: true,
    removeAdditional: false, // unknown fields are reported as `not_permitted`, never dropped
    useDefaults: true,
    coerceTypes,
    strict: false,
  });
  addFormats(ajv);
  // MSISDN as in the MPC data formats: E.164 digits only, no `+` or leading zeros.
  ajv.addFormat('msisdn', /^[1-9]\d{6,14}$/);
  return ajv;
}

const bodyAjv = makeAjv(false);
const textAjv = makeAjv('array');

export const validatorCompiler: FastifySchemaCompiler<any> = ({ schema, httpPart }) => {
  const validate = (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object);
  return validate as any;
};
