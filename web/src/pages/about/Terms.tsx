/**
 * Terms of use (FR-LEGAL-003): what users may do with what they generate, and the use restrictions
 * of the CreativeML Open RAIL++-M licence (its Attachment A) that bind every user of SDXL here.
 */
export function Terms() {
  return (
    <section className="card terms" id="terms" aria-labelledby="terms-heading">
      <h2 id="terms-heading">Terms of use</h2>
      <h3>Your images and commercial use</h3>
      <p>
        Images you create here with Stable Diffusion XL are yours to use, including commercially: the model's licence
        (CreativeML Open RAIL++-M, section III.6) says the licensor claims no rights in the output you generate. You are
        accountable for your output and how it is used, and no use of it may break the licence's restrictions below or
        the law. Whether an image can be protected by copyright depends on your country's law.
      </p>
      <p>
        This installation is run by its operator, who may set further rules, limits and plans. The Fimum AI software is
        open source under the Apache License 2.0; it adds no claim on your prompts or images.
      </p>
      <h3>Use restrictions</h3>
      <p>By the model licence (Attachment A), you agree not to use the model or its output:</p>
      <ul className="restrictions">
        <li>in any way that violates any applicable national, federal, state, local or international law or regulation;</li>
        <li>to exploit, harm or attempt to exploit or harm minors in any way;</li>
        <li>to generate or disseminate verifiably false information and/or content with the purpose of harming others;</li>
        <li>to generate or disseminate personal identifiable information that can be used to harm an individual;</li>
        <li>to defame, disparage or otherwise harass others;</li>
        <li>
          for fully automated decision making that adversely impacts an individual's legal rights or otherwise creates or
          modifies a binding, enforceable obligation;
        </li>
        <li>
          for any use intended to or which has the effect of discriminating against or harming individuals or groups based
          on online or offline social behaviour or known or predicted personal or personality characteristics;
        </li>
        <li>
          to exploit any of the vulnerabilities of a specific group of persons based on their age, social, physical or
          mental characteristics, in order to materially distort the behaviour of a person in that group in a way that
          causes or is likely to cause that person or another person physical or psychological harm;
        </li>
        <li>
          for any use intended to or which has the effect of discriminating against individuals or groups based on legally
          protected characteristics or categories;
        </li>
        <li>to provide medical advice and medical results interpretation;</li>
        <li>
          to generate or disseminate information for the administration of justice, law enforcement, immigration or asylum
          processes, such as predicting that an individual will commit fraud or a crime.
        </li>
      </ul>
      <p className="muted">
        This is a summary to help you; the full licence text below is what applies. Content the safety filter blocks is
        not generated.
      </p>
    </section>
  );
}
