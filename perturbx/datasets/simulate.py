r"""A semi-synthetic L1000 benchmark: real basal profiles and real compound structures, responses from a known model.

Why: the real L1000 data staged for the book is small, and real data never tells us the true distribution of
responses to a condition. Here every profile is drawn from a documented model, so the true conditional mean and
spread of every (compound, cell line, dose, time) condition are known exactly, and so are the substructures and
genes that cause each response.

The model, for compound c, cell line k, dose d (µM), time t (h), replicate r, gene g:

.. math::

    x_{ckdtr,g} = b_{k,g} + \rho_r\, H_c(d)\, T_c(t)\, e_{ck,g} + s_r + \varepsilon_{r,g}

- :math:`b_k`: the real basal log2 expression of cell line k (LINCS 2020, 164 lines).
- Structure-dependent effects: ``n_causal_bits`` Morgan fingerprint bits (substructures present in 3-50 % of the
  compound pool) each push 1-3 gene programs up or down; the programs are Reactome pathways restricted to 10-60
  landmark genes. A compound's program activity is the sum over its causal bits, plus a small compound-specific
  term that structure does not explain (``idiosyncratic_sd``).
- Cell-line modulation: a cell line's sensitivity to program p is ``2 * sigmoid(z)``, z = the standardised mean
  basal expression of the program's genes in that cell line (cells that express a pathway respond more to it).
- Saturation: the mean response of a gene is ``max_effect * tanh(raw / max_effect)`` (at most 4 log2 units).
- :math:`H_c(d) = d^{n_c} / (EC50_c^{n_c} + d^{n_c})`: Hill dose-response, EC50 log-uniform in 0.03-3 µM
  (``ec50_range_um``), Hill coefficient n_c uniform in 0.8-2.5.
- :math:`T_c(t) = 1 - \exp(-t / \tau_c)`: onset with time constant τ_c uniform in 3-18 h.
- :math:`\rho_r \sim \mathrm{LogNormal}(-\sigma^2/2, \sigma)`: replicate-level response strength (mean 1), the
  source of the "diversity of responses" a generative model should reproduce.
- :math:`s_r \sim N(0, \text{plate\_sd}^2)`: a per-replicate shift shared by all genes (plate/batch effect).
- :math:`\varepsilon_{r,g} \sim N(0, \sigma_g^2)`: gene-wise noise, σ_g = ``noise_scale`` x the real well-to-well
  SD of gene g across the 26 DMSO wells of the A375 plate.

True conditional moments (exact, before any clipping; nothing is clipped):
mean = b + H T e, variance_g = σ_ρ² (H T e_g)² + plate_sd² + σ_g², with σ_ρ² = exp(σ²) - 1.

How it differs from real data: responses are linear in program space and additive across substructures; noise is
Gaussian and independent across genes except for the shared shift; there are no failed wells, no batch structure
beyond the shift, no cytotoxicity collapse at high dose, and every condition has the same number of replicates.

Designs (``SimulationConfig.design``):

- ``"factorial"`` (the default): every compound in every cell line at every dose and time (or ``n_conditions`` of
  that grid drawn at random). Small: a model sees only tens of training structures.
- ``"lincs"``: sparse, like LINCS phase I. Compounds come from the ~20,000 LINCS structures; the cell lines are the
  LINCS core lines (MCF7, PC3, A375, ...) plus random others. ``n_reference`` reference compounds are measured on
  the full grid of cell lines x doses x times; every other compound in ``1 + Poisson(extra_cells_mean)`` cell
  lines (drawn by popularity: core lines often, others rarely), at one dose (``main_dose_um``, 10 µM, with
  probability ``p_main_dose``, otherwise a random one) plus a second random dose with probability
  ``p_second_dose``, and at one random time plus the other with probability ``p_second_time``. Every measured
  condition has ``n_replicates`` replicates. :func:`lincs_scale_config` gives the sizes of the profiles (smoke,
  quick, full); they also set the structure-effect strength (``n_causal_bits``, ``idiosyncratic_sd``) so that an
  unseen-compound split is learnable from structure but not trivial (``benchmarks/simulator_learnability.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .. import chem
from ..pathways import landmark_gene_sets, read_gmt
from .cmap import N_LANDMARKS, landmark_genes, read_matrix
from .curated import CuratedL1000
from .fetcher import fetch
from .reference_tables import basal_profiles, compound_table


@dataclass(frozen=True)
class SimulationConfig:
    """Size and parameters of a simulated benchmark (defaults: 100 x 12 x 6 x 2 conditions x 3 replicates = 43,200).

    The fields from ``design`` on only matter for the sparse ``"lincs"`` design (see the module docstring and
    :func:`lincs_scale_config`); the factorial design ignores them.
    """

    n_compounds: int = 100
    n_cells: int = 12
    doses_um: tuple[float, ...] = (0.04, 0.12, 0.37, 1.11, 3.33, 10.0)
    times_h: tuple[float, ...] = (6.0, 24.0)
    n_replicates: int = 3
    n_conditions: int | None = None  # None: the full grid compounds x cells x doses x times
    n_programs: int = 20
    n_causal_bits: int = 64
    fingerprint_bits: int = 1024
    effect_scale: float = 2.5  # log2 units per unit of program activity (before saturation)
    max_effect: float = 4.0  # responses saturate smoothly at this many log2 units
    idiosyncratic_sd: float = 0.3
    ec50_range_um: tuple[float, float] = (0.03, 3.0)  # EC50 is log-uniform in this range
    response_sd: float = 0.3  # sigma of the log-normal replicate response strength
    plate_sd: float = 0.1
    noise_scale: float = 1.0
    seed: int = 0
    design: str = "factorial"  # "factorial" (the grid) or "lincs" (sparse, like LINCS)
    n_reference: int = 0  # lincs: compounds measured on the full grid of cell lines x doses x times
    extra_cells_mean: float = 1.0  # lincs: other compounds are measured in 1 + Poisson(this) cell lines
    main_dose_um: float = 10.0  # lincs: the usual single dose (µM), as in LINCS
    p_main_dose: float = 0.7  # lincs: probability that a compound's first dose is main_dose_um
    p_second_dose: float = 0.2  # lincs: probability of a second, random dose
    p_second_time: float = 0.2  # lincs: probability of being measured at a second time


DESIGNS = ("factorial", "lincs")
LINCS_CORE_CELLS = ("MCF7", "PC3", "A375", "A549", "VCAP", "HA1E", "HT29", "HCC515", "HEPG2")
"""The LINCS phase I core cell lines, most measured first: the popular cell lines of the ``"lincs"`` design."""
OTHER_CELL_POPULARITY = 0.08  # popularity of a non-core cell line (the first core line has 1)

# profile -> (compounds, cell lines, reference compounds, replicates) of the "lincs" design
LINCS_SIZES = {"smoke": (150, 6, 3, 2), "quick": (400, 8, 4, 3), "full": (1400, 16, 8, 3)}


def lincs_scale_config(profile: str, seed: int = 0, **changes) -> SimulationConfig:
    """The sparse LINCS-like benchmark of a profile (``"smoke"``, ``"quick"`` or ``"full"``).

    Sizes (compounds, cell lines, reference compounds, replicates): smoke 150, 6, 3, 2 (~1,400 profiles, seconds);
    quick 400, 8, 4, 3 (~4,600 profiles); full 1,400, 16, 8, 3 (~16,900 profiles; a ridge fits in ~10 s on 2 CPU
    cores), sized so that a chapter's full run fits 90 minutes on 2 CPU cores. The structure model keeps the
    default 64 causal bits of 1,024 but halves ``idiosyncratic_sd`` to 0.15: at 0.3 the part of a compound's
    response that structure cannot explain capped a ridge given the true causal bits at ~0.75 Pearson with the
    true mean change on unseen compounds (at the full size); at
    0.15 it reaches ~0.85, while a ridge on the whole fingerprint stays clearly below it and far above the
    per-cell-line mean (``benchmarks/simulator_learnability.py``).

    Args:
        profile: the size.
        seed: seeds every draw (programs, compounds, effects, design, replicates).
        changes: any other :class:`SimulationConfig` fields, e.g. ``n_replicates=2``.

    Returns:
        a config with ``design="lincs"``.
    """
    if profile not in LINCS_SIZES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(LINCS_SIZES)}")
    n_compounds, n_cells, n_reference, n_replicates = LINCS_SIZES[profile]
    config = SimulationConfig(n_compounds=n_compounds, n_cells=n_cells, n_reference=n_reference,
                              n_replicates=n_replicates, idiosyncratic_sd=0.15, design="lincs", seed=seed)
    return replace(config, **changes)


def _check_config(config: SimulationConfig) -> None:
    """Raise ValueError for a design the generator cannot draw."""
    if config.design not in DESIGNS:
        raise ValueError(f"unknown design {config.design!r}: choose one of {', '.join(DESIGNS)}")
    if config.design == "lincs":
        if config.n_conditions is not None:
            raise ValueError("n_conditions subsamples the factorial grid; the lincs design sets its own conditions")
        if config.main_dose_um not in config.doses_um:
            raise ValueError(f"main_dose_um {config.main_dose_um} is not one of doses_um {config.doses_um}")
        if not 0 <= config.n_reference <= config.n_compounds:
            raise ValueError(f"n_reference must be in 0..n_compounds, got {config.n_reference}")


@dataclass
class SimulationTruth:
    """Everything the generator knew.

    Attributes:
        conditions: one row per condition (condition_id, compound_id, cell_id, dose_um, time_h).
        mean: float32 (n_conditions, 978) true conditional mean.
        sd: float32 (n_conditions, 978) true conditional SD per gene.
        programs: name -> landmark positions of each gene program.
        causal_bits: (n_causal_bits,) fingerprint bit indices that carry effects.
        bit_effects: (n_causal_bits, n_programs) program activity added by each causal bit.
        compounds: per compound: compound_id, smiles, ec50_um, hill, tau_h.
        fingerprints: uint8 (n_compounds, fingerprint_bits) in ``compounds`` order.
        cell_modulation: (n_cells, n_programs) sensitivity of each cell line to each program.
    """

    conditions: pd.DataFrame
    mean: np.ndarray
    sd: np.ndarray
    programs: dict[str, list[int]]
    causal_bits: np.ndarray
    bit_effects: np.ndarray
    compounds: pd.DataFrame
    fingerprints: np.ndarray
    cell_modulation: pd.DataFrame
    loadings: np.ndarray = field(repr=False)  # (n_programs, 978) gene loadings of each program
    config: SimulationConfig = field(default_factory=SimulationConfig)

    def causal_genes(self, compound_id: str) -> np.ndarray:
        """Landmark positions in the programs this compound's causal bits drive, sorted."""
        row = self.compounds.index.get_loc(compound_id)
        active = self.fingerprints[row, self.causal_bits].astype(bool)
        programs = np.flatnonzero(np.abs(self.bit_effects[active]).sum(axis=0) > 0)
        return np.flatnonzero(np.abs(self.loadings[programs]).sum(axis=0) > 0)


@dataclass
class Simulation:
    """Simulated profiles (``data``, the same structure as real curated data) and the ``truth`` behind them."""

    data: CuratedL1000
    truth: SimulationTruth

    def condition_rows(self, profiles: np.ndarray | None = None) -> np.ndarray:
        """Row of ``truth.conditions`` (and of ``truth.mean`` / ``truth.sd``) of each profile at positions
        ``profiles`` (all profiles when None), int (n,)."""
        ids = self.data.metadata["condition_id"].to_numpy()
        ids = ids if profiles is None else ids[profiles]
        return self.truth.conditions.set_index("condition_id").loc[ids, "row"].to_numpy()

    def sample(self, condition_ids: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
        """Fresh draws from the true distribution: float32 (len(condition_ids), n, 978)."""
        rng = np.random.default_rng(seed)
        cond = self.truth.conditions.set_index("condition_id").loc[condition_ids]
        basal = basal_profiles().loc[cond["cell_id"]].to_numpy(np.float32)
        response = self.truth.mean[cond["row"].to_numpy()] - basal
        config = self.truth.config
        strength = _lognormal(rng, config.response_sd, (len(cond), n, 1))
        shift = rng.normal(0, config.plate_sd, (len(cond), n, 1))
        noise = rng.standard_normal((len(cond), n, N_LANDMARKS)) * _noise_sd(config)[None, None, :]
        return (basal[:, None] + strength * response[:, None] + shift + noise).astype(np.float32)


def _lognormal(rng: np.random.Generator, sigma: float, shape) -> np.ndarray:
    return rng.lognormal(mean=-sigma**2 / 2, sigma=sigma, size=shape)


def dmso_replicate_sd() -> np.ndarray:
    """Per-gene SD (log2 units) across the 26 DMSO wells of the real A375 plate, landmark order, shape (978,)."""
    matrix = read_matrix(fetch("l1000_level3_a375_plate"))
    controls = (matrix.columns["pert_type"] == "ctl_vehicle").to_numpy()
    return matrix.values[controls].std(axis=0, ddof=1).astype(np.float32)


def _noise_sd(config: SimulationConfig) -> np.ndarray:
    return config.noise_scale * dmso_replicate_sd()


def _pick_compounds(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Pick ``n`` real LINCS compounds with valid, drug-sized SMILES and distinct structures."""
    table = compound_table()
    order = rng.permutation(len(table))
    chosen, keys = [], set()
    for position in order:
        pert_id, row = table.index[position], table.iloc[position]
        try:
            mol = chem.mol_from_smiles(row["smiles"])
            key = chem.structure_key(row["smiles"])
        except chem.InvalidSmilesError:
            continue
        if not 10 <= mol.GetNumHeavyAtoms() <= 60 or key in keys or "." in row["smiles"]:
            continue
        keys.add(key)
        chosen.append((pert_id, row["pert_iname"], chem.canonical_smiles(row["smiles"]), key))
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} usable compounds in lincs_compound_info, {n} requested")
    return pd.DataFrame(chosen, columns=["compound_id", "compound_name", "smiles", "compound_group"])


def simulate(config: SimulationConfig = SimulationConfig()) -> Simulation:
    """Draw a semi-synthetic benchmark (see the module docstring for the model).

    The stages draw from one generator seeded with ``config.seed``, in this order: gene programs, compounds,
    their structure effects, their dose-response and onset parameters, cell lines, conditions, replicates.

    Args:
        config: sizes and model parameters.

    Returns:
        :class:`Simulation`; ``data.expression``, ``data.basal``: float32 (n_conditions * n_replicates, 978) log2
        expression, a condition's replicates in consecutive rows (n_conditions: the grid, ``config.n_conditions``,
        or what the ``"lincs"`` design drew); ``data.metadata``: the curated-data columns plus
        ``condition_id`` and ``replicate``; ``data.dropped`` is empty (nothing is dropped).
    """
    _check_config(config)
    rng = np.random.default_rng(config.seed)
    genes = landmark_genes()
    programs, loadings = _gene_programs(config, genes, rng)
    compounds = _pick_compounds(config.n_compounds, rng)
    fingerprints = chem.morgan_fingerprints(compounds["smiles"].tolist(), n_bits=config.fingerprint_bits,
                                            records=compounds["compound_id"].tolist())
    causal_bits, bit_effects, activity = _structure_effects(config, fingerprints, rng)
    compounds = _with_kinetics(compounds, config, rng)
    basal, modulation = _cell_lines(config, programs, rng)
    conditions = _conditions(config, compounds.index, basal.index.tolist(), rng)
    c_index = compounds.index.get_indexer(conditions["compound_id"])
    k_index = basal.index.get_indexer(conditions["cell_id"])
    scale = _dose_time_scale(conditions, compounds, c_index)
    response = _mean_response(config, scale, activity[c_index], modulation.to_numpy()[k_index], loadings)
    condition_basal = basal.to_numpy(np.float32)[k_index]  # (n_conditions, 978)
    noise_sd = _noise_sd(config)
    rows = np.repeat(np.arange(len(conditions)), config.n_replicates)  # condition of each profile
    expression = _draw_replicates(config, condition_basal, response, rows, noise_sd, rng)
    metadata = _profile_metadata(conditions, compounds, c_index, config.n_replicates)
    data = CuratedL1000(expression, condition_basal[rows], metadata,
                        pd.DataFrame(columns=["profile_id", "source", "reason"]), genes[["gene_id", "gene_symbol"]])
    truth = SimulationTruth(conditions=conditions, mean=condition_basal + response,
                            sd=_true_sd(config, response, noise_sd), programs=programs, causal_bits=causal_bits,
                            bit_effects=bit_effects, compounds=compounds, fingerprints=fingerprints,
                            cell_modulation=modulation, loadings=loadings, config=config)
    return Simulation(data, truth)


def _gene_programs(config: SimulationConfig, genes: pd.DataFrame,
                   rng: np.random.Generator) -> tuple[dict[str, list[int]], np.ndarray]:
    """Programs: Reactome pathways with 10-60 landmark genes; loadings mostly positive, some genes opposed.

    Returns:
        (name -> landmark positions, in program order; float32 (n_programs, 978) loadings).
    """
    pathways = landmark_gene_sets(read_gmt(fetch("reactome_pathways")), genes, min_size=10, max_size=60)
    names = sorted(pathways)
    picked, covered = [], set()
    for i in rng.permutation(len(names)):  # Reactome pathways overlap a lot: keep programs nearly disjoint
        members = set(pathways[names[i]])
        if len(members & covered) <= 0.2 * len(members):
            picked.append(names[i])
            covered |= members
        if len(picked) == config.n_programs:
            break
    if len(picked) < config.n_programs:
        raise ValueError(f"only {len(picked)} nearly disjoint Reactome programs exist; ask for fewer than "
                         f"{config.n_programs}")
    programs = {name: pathways[name] for name in picked}
    loadings = np.zeros((config.n_programs, N_LANDMARKS), dtype=np.float32)
    for p, name in enumerate(picked):
        members = np.asarray(programs[name])
        signs = np.where(rng.random(len(members)) < 0.8, 1.0, -1.0)
        loadings[p, members] = signs * rng.normal(1.0, 0.3, len(members))
    return programs, loadings


def _structure_effects(config: SimulationConfig, fingerprints: np.ndarray,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Causal fingerprint bits (in 3-50 % of compounds), the programs each drives, and each compound's activity.

    Returns:
        (causal bit indices (n_bits,), float32 (n_bits, n_programs) effect of each bit, float32 (n_compounds,
        n_programs) program activity: the effects of a compound's causal bits plus an idiosyncratic term).
    """
    frequency = fingerprints.mean(axis=0)
    eligible = np.flatnonzero((frequency >= 0.03) & (frequency <= 0.5))
    causal_bits = np.sort(rng.choice(eligible, size=min(config.n_causal_bits, len(eligible)), replace=False))
    bit_effects = np.zeros((len(causal_bits), config.n_programs), dtype=np.float32)
    for b in range(len(causal_bits)):
        targets = rng.choice(config.n_programs, size=rng.integers(1, 4), replace=False)
        bit_effects[b, targets] = rng.normal(0, 1, len(targets))
    activity = fingerprints[:, causal_bits].astype(np.float32) @ bit_effects
    activity += rng.normal(0, config.idiosyncratic_sd, activity.shape).astype(np.float32)
    return causal_bits, bit_effects, activity


def _with_kinetics(compounds: pd.DataFrame, config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Add each compound's EC50 (µM, log-uniform), Hill coefficient and onset time constant tau (h); index by id."""
    return compounds.assign(ec50_um=10 ** rng.uniform(*np.log10(config.ec50_range_um), len(compounds)),
                            hill=rng.uniform(0.8, 2.5, len(compounds)),
                            tau_h=rng.uniform(3, 18, len(compounds))).set_index("compound_id")


def _cell_lines(config: SimulationConfig, programs: dict[str, list[int]],
                rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cell lines (random, or the LINCS core lines first): real basal profiles; sensitivity from how much they
    express each program.

    Returns:
        (basal log2 expression, cells x 978, cells sorted; modulation, cells x programs, ``2 * sigmoid(z)``).
    """
    basal = basal_profiles()
    if config.design == "lincs":
        cells = _lincs_cells(basal.index, config.n_cells, rng)
    else:
        cells = sorted(rng.choice(basal.index.to_numpy(), size=config.n_cells, replace=False))
    basal = basal.loc[cells]
    picked = list(programs)
    program_expression = np.stack([basal.to_numpy()[:, programs[n]].mean(axis=1) for n in picked], axis=1)
    z = (program_expression - program_expression.mean(0)) / (program_expression.std(0) + 1e-6)
    return basal, pd.DataFrame(2 / (1 + np.exp(-z)), index=cells, columns=picked)


def _conditions(config: SimulationConfig, compound_ids: pd.Index, cells: list[str],
                rng: np.random.Generator) -> pd.DataFrame:
    """The grid compounds x cells x doses x times, ``config.n_conditions`` of it drawn at random, or the sparse
    ``"lincs"`` design (:func:`_sparse_conditions`).

    Returns:
        one row per condition: condition_id, compound_id, cell_id, dose_um, time_h, row (its position).
    """
    if config.design == "lincs":
        conditions = _sparse_conditions(config, compound_ids, cells, rng)
    else:
        grid = pd.MultiIndex.from_product([compound_ids, cells, config.doses_um, config.times_h],
                                          names=["compound_id", "cell_id", "dose_um", "time_h"]).to_frame(index=False)
        if config.n_conditions is not None and config.n_conditions < len(grid):
            grid = grid.iloc[np.sort(rng.choice(len(grid), size=config.n_conditions, replace=False))]
        conditions = grid.reset_index(drop=True)
    conditions.insert(0, "condition_id", [f"C{i:07d}" for i in range(len(conditions))])
    conditions["row"] = np.arange(len(conditions))
    return conditions


def _lincs_cells(available: pd.Index, n_cells: int, rng: np.random.Generator) -> list[str]:
    """The first ``n_cells`` LINCS core lines with a basal profile, then random other lines; sorted names."""
    names = [str(c) for c in available]
    core = [c for c in LINCS_CORE_CELLS if c in names][:n_cells]
    others = sorted(set(names) - set(core))
    if len(core) + len(others) < n_cells:
        raise ValueError(f"only {len(names)} cell lines have basal profiles, {n_cells} requested")
    return sorted(core + list(rng.choice(others, size=n_cells - len(core), replace=False)))


def cell_popularity(cells: list[str]) -> np.ndarray:
    """How often the ``"lincs"`` design measures each cell line, relative weights (n_cells,): core lines
    ``1 / (1 + 0.25 * rank)`` in :data:`LINCS_CORE_CELLS` order, others :data:`OTHER_CELL_POPULARITY`."""
    rank = {c: i for i, c in enumerate(LINCS_CORE_CELLS)}
    return np.array([1 / (1 + 0.25 * rank[c]) if c in rank else OTHER_CELL_POPULARITY for c in cells])


def _sparse_conditions(config: SimulationConfig, compound_ids: pd.Index, cells: list[str],
                       rng: np.random.Generator) -> pd.DataFrame:
    """The ``"lincs"`` design: reference compounds (the first ``n_reference``) on the full grid, every other
    compound in a few popular cell lines at one or two doses and times (see the module docstring).

    Returns:
        one row per condition, ordered by compound, cell, dose, time: compound_id, cell_id, dose_um, time_h.
    """
    n, doses, times = len(compound_ids), np.asarray(config.doses_um), np.asarray(config.times_h)
    n_cells = np.minimum(1 + rng.poisson(config.extra_cells_mean, n), len(cells))
    keys = np.log(cell_popularity(cells)) + rng.gumbel(size=(n, len(cells)))  # Gumbel top-k: weighted, no repeats
    cell_mask = np.argsort(np.argsort(-keys, axis=1), axis=1) < n_cells[:, None]
    main = int(np.flatnonzero(doses == config.main_dose_um)[0])
    dose_mask = _one_or_two_levels(len(doses), n, config.p_main_dose, config.p_second_dose, main, rng)
    time_mask = _one_or_two_levels(len(times), n, 0.0, config.p_second_time, 0, rng)
    for mask in (cell_mask, dose_mask, time_mask):
        mask[: config.n_reference] = True
    c, k, d, t = np.nonzero(cell_mask[:, :, None, None] & dose_mask[:, None, :, None] & time_mask[:, None, None, :])
    return pd.DataFrame({"compound_id": compound_ids.to_numpy()[c], "cell_id": np.asarray(cells, dtype=object)[k],
                         "dose_um": doses[d], "time_h": times[t]})


def _one_or_two_levels(n_levels: int, n: int, p_main: float, p_second: float, main: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Boolean (n, n_levels): level ``main`` with probability ``p_main``, else a random one, plus a second,
    different random level with probability ``p_second``."""
    first = np.where(rng.random(n) < p_main, main, rng.integers(0, n_levels, n))
    second = (first + 1 + rng.integers(0, max(n_levels - 1, 1), n)) % n_levels
    mask = np.zeros((n, n_levels), dtype=bool)
    mask[np.arange(n), first] = True
    has_second = (rng.random(n) < p_second) & (n_levels > 1)
    mask[np.flatnonzero(has_second), second[has_second]] = True
    return mask


def _dose_time_scale(conditions: pd.DataFrame, compounds: pd.DataFrame, c_index: np.ndarray) -> np.ndarray:
    """H_c(d) T_c(t) of each condition, (n_conditions,): Hill dose-response times the onset in time."""
    dose, time = conditions["dose_um"].to_numpy(), conditions["time_h"].to_numpy()
    ec50, hill, tau = (compounds[c].to_numpy()[c_index] for c in ("ec50_um", "hill", "tau_h"))
    return (dose**hill / (ec50**hill + dose**hill)) * (1 - np.exp(-time / tau))


def _mean_response(config: SimulationConfig, scale: np.ndarray, activity: np.ndarray, modulation: np.ndarray,
                   loadings: np.ndarray) -> np.ndarray:
    """True mean change from basal, float32 (n_conditions, 978) log2 units, saturating at ``config.max_effect``.

    Args:
        scale: (n_conditions,) dose-time factor.
        activity: (n_conditions, n_programs) program activity of each condition's compound.
        modulation: (n_conditions, n_programs) sensitivity of each condition's cell line.
        loadings: (n_programs, 978) gene loadings.
    """
    response = np.empty((len(scale), N_LANDMARKS), dtype=np.float32)
    for start in range(0, len(scale), 20_000):  # bounded memory for large grids
        part = slice(start, start + 20_000)
        raw = config.effect_scale * scale[part, None] * ((activity[part] * modulation[part]) @ loadings)
        response[part] = config.max_effect * np.tanh(raw / config.max_effect)  # saturation: no 10-log2 changes
    return response


def _true_sd(config: SimulationConfig, response: np.ndarray, noise_sd: np.ndarray) -> np.ndarray:
    """True SD per condition and gene, float32 (n_conditions, 978): sqrt(σ_ρ² response² + plate_sd² + σ_g²)."""
    variance_rho = np.exp(config.response_sd**2) - 1
    return np.sqrt(variance_rho * response**2 + config.plate_sd**2 + noise_sd[None, :] ** 2).astype(np.float32)


def _draw_replicates(config: SimulationConfig, condition_basal: np.ndarray, response: np.ndarray, rows: np.ndarray,
                     noise_sd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Replicate profiles, float32 (len(rows), 978): basal + strength * response + shift + gene noise.

    Args:
        condition_basal: float32 (n_conditions, 978) basal log2 expression of each condition's cell line.
        response: float32 (n_conditions, 978) true mean change.
        rows: (n_profiles,) condition row of each profile.
        noise_sd: (978,) gene-wise noise SD.
    """
    strength = _lognormal(rng, config.response_sd, (len(rows), 1)).astype(np.float32)
    shift = rng.normal(0, config.plate_sd, (len(rows), 1)).astype(np.float32)
    expression = np.empty((len(rows), N_LANDMARKS), dtype=np.float32)
    for start in range(0, len(rows), 50_000):
        part = slice(start, start + 50_000)
        noise = rng.standard_normal((len(rows[part]), N_LANDMARKS), dtype=np.float32) * noise_sd
        expression[part] = condition_basal[rows[part]] + strength[part] * response[rows[part]] + shift[part] + noise
    return expression


def _profile_metadata(conditions: pd.DataFrame, compounds: pd.DataFrame, c_index: np.ndarray,
                      n_rep: int) -> pd.DataFrame:
    """Curated-data metadata plus condition_id and replicate (1...n_rep): ``n_rep`` rows per condition, in order."""
    rows = np.repeat(np.arange(len(conditions)), n_rep)
    replicate = np.tile(np.arange(1, n_rep + 1), len(conditions))
    cond = conditions.iloc[rows].reset_index(drop=True)
    return pd.DataFrame({
        "profile_id": [f"{c}:R{r}" for c, r in zip(cond["condition_id"], replicate)],
        "source": "simulated", "level": 3,
        "compound_id": cond["compound_id"],
        "compound_name": compounds["compound_name"].to_numpy()[c_index[rows]],
        "canonical_smiles": compounds["smiles"].to_numpy()[c_index[rows]],
        "compound_group": compounds["compound_group"].to_numpy()[c_index[rows]],
        "smiles_source": "simulated", "cell_id": cond["cell_id"], "dose_um": cond["dose_um"],
        "time_h": cond["time_h"], "plate": np.nan, "basal_source": "cell-line basal table",
        "condition_id": cond["condition_id"], "replicate": replicate,
    })
