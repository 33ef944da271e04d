// Writes tests/data/tokenizer/corpus.jsonl: one JSON string per line, each a document for the
// tokenizer parity test. Deterministic (seeded). Sources, mixed into ~1.2 MB:
//  - hand-written sentences in many languages and scripts (below);
//  - month and day names of every glibc locale in /usr/share/i18n/locales (Debian's locales
//    package; written there as <Uxxxx> escapes), real words in ~300 languages;
//  - ember's own C++ sources and Markdown (code, comments, indentation);
//  - generated stress text: emoji with ZWJ, skin tones and flags, combining marks, numbers,
//    contractions in mixed case, runs of every kind of whitespace, special-token look-alikes.
// U+0085 and U+FEFF are left out: JavaScript's \s differs from tiktoken's (Rust) \s on exactly
// those two, so the npm goldens would not be tiktoken's there (tokenizer_test covers them alone).
// Usage: node gen_corpus.mjs [ember-root]
import fs from 'node:fs'
import path from 'node:path'

const root = process.argv[2] ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..')
let seed = 0x5eed1234
function rand() {  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = (a) => a[Math.floor(rand() * a.length)]
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1))

const sentences = [
  'The quick brown fox jumps over the lazy dog. It\'s 3:45 p.m. and we\'re late!',
  'Don\'t panic. I\'m sure they\'ll understand; you\'ve done what you\'d promised.',
  'Portez ce vieux whisky au juge blond qui fume. L\'été dernier, nous étions à Montréal.',
  'Falsches Üben von Xylophonmusik quält jeden größeren Zwerg. Straße, Maß, Fußgängerübergang.',
  'El veloz murciélago hindú comía feliz cardillo y kiwi. ¿Dónde está la biblioteca? ¡Olé!',
  'À noite, vovô Kowalsky vê o ímã cair no pé do pinguim queixoso e vovó põe açúcar no chá.',
  'Pchnąć w tę łódź jeża lub ośm skrzyń fig. Zażółć gęślą jaźń.',
  'Příliš žluťoučký kůň úpěl ďábelské ódy. Šťastný nový rok!',
  'Съешь же ещё этих мягких французских булок, да выпей чаю. Москва — столица России.',
  'Жебракують філософи при ґанку церкви в Гадячі, ще й шатро їхнє п’яне знаємо.',
  'Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Η Ελλάδα είναι όμορφη τον Αύγουστο.',
  'Ո՞վ է Հայաստանի մայրաքաղաքը: Երևանը մեծ քաղաք է:',
  'გამარჯობა, როგორ ხარ? საქართველოს დედაქალაქი თბილისია.',
  'نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق. القاهرة ٢٠٢٤',
  'بر اساس گزارش‌ها، هوای تهران امروز آفتابی است و دمای هوا ۲۵ درجه خواهد بود.',
  'עטלף אבק נס דרך מזגן שהתפוצץ כי חם. שָׁלוֹם עֲלֵיכֶם',
  'ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम।',
  'আমি বাংলায় গান গাই। ঢাকা বাংলাদেশের রাজধানী।',
  'தமிழ் ஒரு செம்மொழி. சென்னை தமிழ்நாட்டின் தலைநகரம்.',
  'తెలుగు భాష దక్షిణ భారతదేశంలో మాట్లాడబడుతుంది.',
  'ಕನ್ನಡ ಒಂದು ದ್ರಾವಿಡ ಭಾಷೆ. ಬೆಂಗಳೂರು ಕರ್ನಾಟಕದ ರಾಜಧಾನಿ.',
  'മലയാളം കേരളത്തിലെ ഭാഷയാണ്.',
  'ਪੰਜਾਬੀ ਭਾਸ਼ਾ ਗੁਰਮੁਖੀ ਲਿਪੀ ਵਿੱਚ ਲਿਖੀ ਜਾਂਦੀ ਹੈ।',
  'ગુજરાતી ભાષા ભારતના ગુજરાત રાજ્યની ભાષા છે.',
  'เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน',
  'ພາສາລາວແມ່ນພາສາທາງການຂອງລາວ.',
  'ភាសាខ្មែរគឺជាភាសាផ្លូវការរបស់ប្រទេសកម្ពុជា។',
  'မြန်မာဘာသာစကားသည် မြန်မာနိုင်ငံ၏ ရုံးသုံးဘာသာစကားဖြစ်သည်။',
  'Tiếng Việt có dấu: Trăm năm trong cõi người ta, chữ tài chữ mệnh khéo là ghét nhau.',
  '我能吞下玻璃而不伤身体。北京是中华人民共和国的首都，人口约两千一百万。',
  '我能吞下玻璃而不傷身體。臺北是臺灣的首都。',
  'いろはにほへと ちりぬるを わかよたれそ つねならむ。東京は日本の首都です。カタカナも使います。',
  '키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다. 서울은 대한민국의 수도이다.',
  'Árvíztűrő tükörfúrógép. Budapest Magyarország fővárosa.',
  'Pijamalı hasta yağız şoföre çabucak güvendi. İstanbul, Iğdır, ılık.',
  'Törkylempijävongahdus. Helsinki on Suomen pääkaupunki.',
  'Flygande bäckasiner söka hwila på mjuka tuvor. Ærøskøbing, Øresund, Ålborg.',
  'Jove xef, porti whisky amb quinze glaçons d\'hidrogen, coi!',
  'Ʃƿǝ ǝxotic Ŀatin: ŉ ǅ ǈ ǋ ǲ ẞ ꜳ ꝏ ƺ ȸ ȹ',
  'Kiswahili ni lugha ya Kibantu. Nairobi ni mji mkuu wa Kenya.',
  'Èdè Yorùbá jẹ́ èdè tí a ń sọ ní ìwọ̀ oòrùn Áfíríkà.',
  'አማርኛ የኢትዮጵያ ይፋዊ ቋንቋ ነው። አዲስ አበባ ዋና ከተማ ናት።',
  'ᐃᓄᒃᑎᑐᑦ ᑎᑎᕋᐅᓯᖅ ᖃᓂᐅᔮᖅᓯᒪᔪᖅ',
  'ᚠᛇᚻ᛫ᛒᛦᚦ᛫ᚠᚱᚩᚠᚢᚱ᛫ᚠᛁᚱᚪ᛫ᚷᛖᚻᚹᛦᛚᚳᚢᛗ',
  'Ѐ ѐ Ѝ ѝ Ґ ґ ӏ Ӂ ӂ — Монгол улс, Улаанбаатар хот.',
  'ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ᠌ ᠦᠰᠦᠭ',
  'ཀ་ཁ་ག་ང་། བོད་ཡིག',
  'ދިވެހި ބަސް',
  'ܠܫܢܐ ܣܘܪܝܝܐ',
  'Ελληνικά με τόνους: ά έ ή ί ό ύ ώ ΐ ΰ ϊ ϋ',
  'Math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ₌₁ⁿ i = n(n+1)/2; ∫₀^∞ e^{-x²} dx = √π/2; α≈0.5, β≠γ.',
  'Currency: $1,234.56, €99,99, £7, ¥1000, ₹250, ₿0.0001, 15% off!!! #deal @shop',
]

function localeWords() {
  const dir = '/usr/share/i18n/locales'
  const out = []
  if (!fs.existsSync(dir)) return out
  for (const f of fs.readdirSync(dir).sort()) {
    const text = fs.readFileSync(path.join(dir, f), 'latin1')
    const m = text.match(/^(?:mon|day|abmon|abday)\s+([\s\S]*?)(?=\n[a-z_]+\s|\nEND)/gm)
    if (!m) continue
    const words = []
    for (const block of m)
      for (const q of block.matchAll(/"((?:<U[0-9A-Fa-f]{4,8}>)+)"/g))
        words.push(q[1].replace(/<U([0-9A-Fa-f]{4,8})>/g, (_, h) => String.fromCodePoint(parseInt(h, 16))))
    if (words.length) out.push(words.join(rand() < 0.5 ? ' ' : ', '))
  }
  return out
}

function sourceFiles() {
  const out = []
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (/\.(cpp|h|cu|cuh|md|py|sh|cmake)$/.test(e.name)) out.push(fs.readFileSync(p, 'utf8'))
    }
  }
  for (const d of ['include', 'src', 'docs', 'tests/golden', 'scripts'])
    if (fs.existsSync(path.join(root, d))) walk(path.join(root, d))
  return out
}

const emoji = ['😀', '😂', '🥲', '🤖', '👍', '👍🏻', '👍🏿', '❤️', '🔥', '🎉', '🚀', '🌍', '🍕', '✨', '🙏🏽',
  '👨‍👩‍👧‍👦', '👩‍💻', '👩🏽‍💻', '🧑🏿‍🚀', '🏳️‍🌈', '🏳️‍⚧️', '🐻‍❄️', '❤️‍🔥', '👁️‍🗨️', '🧔‍♂️', '🤝🏼',
  '🇫🇷', '🇯🇵', '🇺🇸', '🇧🇷', '🇮🇳', '🇺🇦', '🇪🇺', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '#️⃣', '1️⃣', '©️', '™️']
const combining = ['\u0300', '\u0301', '\u0302', '\u0303', '\u0308', '\u030A', '\u0327', '\u0328', '\u0331',
  '\u0336', '\u034F', '\u0489', '\u05B4', '\u0651', '\u093C', '\u0E49', '\u20DD', '\u1AB0', '\u1DC0', '\uFE0F']
const spaces = [' ', '  ', '   ', '    ', '\t', '\t\t', '\n', '\n\n', '\r\n', '\r', '\u00A0', '\u2009',
  '\u3000', '\u2028', '\u2029', '\u200B', ' \n', '  \n  ', '\n   \n', '\u000B', '\u000C', '\u1680', '\u202F']
const words = ['the', 'and', 'Hello', 'WORLD', 'naïve', 'café', 'résumé', 'Straße', 'İstanbul', 'ǅemal',
  'snake_case', 'camelCase', 'PascalCase', 'SCREAMING_CASE', 'x86_64', 'C++20', 'e.g.', 'U.S.A.']
const contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "'rE", "'lL"]
const specials = ['<|start|>', '<|end|>', '<|message|>', '<|channel|>', '<|endoftext|>', '<|return|>',
  '<|call|>', '<|constrain|>', '<|reserved_200013|>', '<|endofprompt|>', '<|startoftext|>', '<|', '|>', '<|start']

function stress() {
  const parts = []
  const n = int(20, 200)
  for (let i = 0; i < n; ++i) {
    const r = rand()
    if (r < 0.15) parts.push(pick(emoji).repeat(int(1, 3)))
    else if (r < 0.25) {
      let w = pick(words)
      for (let k = int(1, 4); k > 0; --k) w += pick(combining)
      parts.push(w)
    } else if (r < 0.37) {
      const kind = int(0, 5)
      parts.push([String(int(0, 9999999)), (rand() * 1e6).toFixed(int(0, 6)), String(int(0, 9)).repeat(int(1, 40)),
        `${int(1, 31)}/${int(1, 12)}/${int(1900, 2100)}`, `${int(0, 255)}.${int(0, 255)}.${int(0, 255)}.${int(0, 255)}`,
        `-${rand().toExponential(int(1, 8))}`][kind])
    } else if (r < 0.50) parts.push(pick(['I', 'you', 'They', 'WE', 'she', 'It', 'DON', 'can', 'Won', 'ma']) + pick(contractions))
    else if (r < 0.65) parts.push(pick(spaces).repeat(int(1, 6)))
    else if (r < 0.72) parts.push(pick(specials))
    else if (r < 0.80) parts.push(pick(sentences))
    else if (r < 0.88) parts.push(pick(words))
    else if (r < 0.92) parts.push(pick(['!', '?', '...', '—', '–', '"', '«»', '「」', '()', '[]', '{}', '</div>', '/*', '*/', '//', '->', '=>', '::', '&&', '||', '!=', '==='])
      .repeat(int(1, 5)))
    else if (r < 0.96) {  // random code points from assigned BMP and astral blocks (Unicode <= 14)
      const ranges = [[0x20, 0x7e], [0xa1, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x5d0, 0x5ea], [0x620, 0x64a],
        [0x905, 0x939], [0xe01, 0xe2e], [0x1100, 0x1112], [0x3041, 0x3096], [0x30a1, 0x30fa], [0x4e00, 0x9fa5],
        [0xac00, 0xd7a3], [0x2190, 0x21ff], [0x2500, 0x257f], [0x1f300, 0x1f5ff], [0x1d400, 0x1d6a3], [0x20000, 0x2a6df]]
      let s = ''
      for (let k = int(1, 12); k > 0; --k) {
        const [lo, hi] = pick(ranges)
        s += String.fromCodePoint(int(lo, hi))
      }
      parts.push(s)
    } else parts.push(pick(['a', 'A', 'é', ' ', '\n', '1', '!', '中', '😀']).repeat(int(50, 400)))
    if (rand() < 0.6) parts.push(pick([' ', ' ', ' ', '', '\n', ', ']))
  }
  return parts.join('')
}

const docs = []
for (const s of sentences) docs.push(s)
for (const w of localeWords()) docs.push(w)
for (const src of sourceFiles()) {
  // Slices of source files, so that no single document dominates.
  for (let at = 0; at < src.length; at += 6000) docs.push(src.slice(at, at + 6000))
}
let size = () => docs.reduce((a, d) => a + Buffer.byteLength(d, 'utf8'), 0)
let total = size()
while (total < 1_250_000) {
  const d = stress()
  docs.push(d)
  total += Buffer.byteLength(d, 'utf8')
}
for (const d of docs)
  if (/[\u0085\uFEFF]/.test(d)) throw new Error('corpus must not contain U+0085 or U+FEFF')
const outDir = path.join(root, 'tests/data/tokenizer')
fs.mkdirSync(outDir, { recursive: true })
fs.writeFileSync(path.join(outDir, 'corpus.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n') + '\n')
console.log(`corpus.jsonl: ${docs.length} documents, ${total} bytes of text`)
